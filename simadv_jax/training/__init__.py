"""Margin-head training of face backbones on image folders or rendered identities, and the LFW protocol.

Sits above the simulator and the recognizers: it writes training run directories that
`simadv_jax.recognizers.load("BACKBONE:WORKDIR")` reads (simadv_jax.recognizers.checkpoints), and nothing below
imports it.

  config.py        TrainConfig (1:1 with launch.train's flags), learning-rate schedule, optimizer
  step.py          TrainState, init_state, the pure train step (and its jitted, donating form)
  loop.py          train_and_evaluate(config, workdir): the checkpointed loop; read_metrics
  data.py          BatchSource protocol, ArraySource, ImageFolder, AttributeFilter, load_image
  synthetic.py     SyntheticSource: identities of the embedded head rendered by the simulator
  heads.py         ArcFace / CosFace margin heads
  verification.py  the LFW k-fold protocol; verify(spec, pairs, images) and save_threshold
"""
