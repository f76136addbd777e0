"""Every output file of a finished (or interrupted) search, from its events and final run states."""
from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np

from simadv_jax import simulator
from simadv_jax.report import html, images, plots
from simadv_jax.report.files import write_bytes_atomic, write_json_atomic
from simadv_jax.report.results import build_results, table_markdown

ADVERSARIALS_DIR = "adversarials"
GRID_PAIRS = 12
SEQUENCE_FRAMES = 10


def render_record(setup, config, strategy: str, entry: dict) -> dict:
    """What `launch.render_params` needs to re-render (and re-score) one sample exactly."""
    recognizer = setup.recognizer
    return {
        "strategy": strategy, "run": entry["run"], "iteration": entry["iteration"], "query": entry["query"],
        "score": entry["score"], "threshold": setup.evaluation.sign * setup.evaluation.threshold,
        "scenario": config.scenario, "recognizer": config.recognizer, "template": recognizer.template,
        "resolution": recognizer.input_size, "supersample": config.supersample,
        "background": list(simulator.DEFAULT_BACKGROUND), "head": config.head, "texture": config.texture,
        "space": setup.space.spec, "params": entry["params"],
    }


def _rescore(setup, config, rhos: np.ndarray, strategies: list[str]) -> dict:
    """Re-embeds the saved adversarials with config.rescore_with (rendered for its template, quantized to
    uint8 like the PNGs) and counts how many are still adversarial there."""
    from simadv_jax import recognizers

    name = config.rescore_with
    try:
        other = recognizers.load(name)
    except (ImportError, OSError) as e:
        raise ValueError(f"--rescore_with={name}: {e}") from None
    render = setup.renderer(other.template, other.input_size)
    ref, probe = render(rhos)
    quantize = lambda x: jnp.asarray(np.rint(np.clip(x, 0, 1) * 255) / 255, jnp.float32)  # noqa: E731
    scores = []
    for start in range(0, len(rhos), images.CHUNK):
        a = other.embed(other.params, quantize(ref[start:start + images.CHUNK]))
        b = other.embed(other.params, quantize(probe[start:start + images.CHUNK]))
        scores.extend(np.asarray(other.score(a, b)).tolist())
    sign = setup.evaluation.sign
    still = [bool(sign * s < sign * other.threshold) for s in scores]
    per_strategy = {}
    for strategy in dict.fromkeys(strategies):
        mine = [k for k, s in zip(still, strategies) if s == strategy]
        per_strategy[strategy] = {"rescored": len(mine), "still_adversarial": int(sum(mine))}
    return {"recognizer": other.name, "threshold": other.threshold, "rescored": len(scores),
            "still_adversarial": int(sum(still)), "fraction_still_adversarial": (sum(still) / len(still)) if still
            else None, "scores": scores, "strategies": per_strategy}


def _best_curves(events: list[dict], runs: int, sign: float) -> list[np.ndarray]:
    """Per run, the iteration's best (most adversarial) similarity per iteration."""
    curves = [dict() for _ in range(runs)]
    for line in events:
        valid = [s for s, v in zip(line["scores"], line["valid"]) if v and s is not None]
        if valid:
            curves[line["run"]][line["iteration"]] = min(valid) if sign > 0 else max(valid)
    return [np.asarray([c[i] for i in sorted(c)]) for c in curves]


def write_outputs(setup, config, output_dir: str, finals: dict, events: dict, completed: dict,
                  seconds: dict) -> dict:
    """Writes adversarials/, the figures, table.md, report.html and (last) results.json; returns results."""
    recognizer, space, sign = setup.recognizer, setup.space, setup.evaluation.sign
    results = build_results(setup, config, finals, events, completed, seconds)
    threshold = results["recognizer"]["threshold"]

    # Saved adversarials, numbered across strategies in order.
    found = [(name, entry) for name in config.strategies for entry in results["strategies"][name]["adversarials"]]
    saved = found[:config.max_saved_adversarials]
    render = setup.renderer(recognizer.template, recognizer.input_size)
    rhos = np.asarray([space.from_dict(entry["params"]) for _, entry in saved], np.float32).reshape(-1, space.size)
    refs, probes = render(rhos)
    directory = os.path.join(output_dir, ADVERSARIALS_DIR)
    os.makedirs(directory, exist_ok=True)
    for index, ((name, entry), ref, probe) in enumerate(zip(saved, refs, probes)):
        entry["index"] = index
        entry["files"] = images.write_adversarial_files(directory, index, ref, probe,
                                                        render_record(setup, config, name, entry))
    if config.rescore_with and saved:
        results["rescore"] = _rescore(setup, config, rhos, [name for name, _ in saved])

    # adversarials.png: adversarial pairs first, then the best sample of runs that found none.
    grid = [(ref, probe, f"{name} run {e['run']}: {e['score']:.3f}", True)
            for (name, e), ref, probe in list(zip(saved, refs, probes))[:GRID_PAIRS]]
    fill = []
    for name in config.strategies:
        runs = finals[name]
        for r in np.flatnonzero((runs.first_adversarial_query < 0) & np.isfinite(runs.best_score)):
            fill.append((name, int(r), np.asarray(runs.best_rho[r]), sign * float(runs.best_score[r])))
    fill = fill[:GRID_PAIRS - len(grid)]
    if fill:
        fill_refs, fill_probes = render(np.stack([f[2] for f in fill]))
        grid += [(a, b, f"{name} run {r} best: {s:.3f}", False)
                 for (name, r, _, s), a, b in zip(fill, fill_refs, fill_probes)]
    write_bytes_atomic(os.path.join(output_dir, "adversarials.png"), plots.pairs_figure(
        [g[0] for g in grid], [g[1] for g in grid], [g[2] for g in grid], [g[3] for g in grid]))

    curves = {name: _best_curves(events[name], config.runs, sign) for name in config.strategies}
    write_bytes_atomic(os.path.join(output_dir, "trajectories.png"),
                       plots.trajectories_figure(curves, threshold, "best score of the iteration"))

    # sequence.png: run 0 of the first strategy.
    first = config.strategies[0]
    run0 = [line for line in events[first] if line["run"] == 0]
    chosen = [run0[i] for i in sorted(set(np.linspace(0, len(run0) - 1, SEQUENCE_FRAMES).astype(int)))] if run0 else []
    chosen = [line for line in chosen if line["best"] is not None]
    frames = render(np.asarray([line["best"]["rho"] for line in chosen], np.float32))[1] if chosen else []
    titles = [f"it {line['iteration']}: {line['scores'][line['best']['k']]:.3f}" for line in chosen]
    xs = [line["iteration"] for line in run0 for s, v in zip(line["scores"], line["valid"]) if v and s is not None]
    ys = [s for line in run0 for s, v in zip(line["scores"], line["valid"]) if v and s is not None]
    write_bytes_atomic(os.path.join(output_dir, "sequence.png"),
                       plots.sequence_figure(list(frames), titles, xs, ys, threshold, f"{first}, run 0"))

    table = table_markdown(results)
    write_bytes_atomic(os.path.join(output_dir, "table.md"), table.encode())
    write_bytes_atomic(os.path.join(output_dir, "report.html"), html.report(results, table).encode())
    write_json_atomic(os.path.join(output_dir, "results.json"), results)
    return results
