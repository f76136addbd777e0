import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from simadv_jax import search

N = 6
LOWS = -2.0 * np.ones(N, np.float32)
HIGHS = 2.0 * np.ones(N, np.float32)
HIDDEN = jnp.array([1.2, -0.9, 0.6, 1.0, -1.3, 0.4])
K = 8
ALL = ["reinforce", "reinforce_ranked", "uniform", "gaussian", "random_opt", "cem", "gradient", "evosax:CMA_ES",
       "evosax:SNES"]


def distance(rho):
    """Toy recognizer: score = distance to a hidden point; adversarial iff < 0.8 (about 3e-4 of the box)."""
    return jnp.linalg.norm(rho - HIDDEN, axis=-1), jnp.ones(rho.shape[0], bool)


def corrupted(rho):
    """score = rho[0] except: rho[1] > 0 reports valid=False with a very adversarial score,
    rho[2] > 1 gives a NaN score (reported valid)."""
    score = jnp.where(rho[:, 1] > 0, -100.0, rho[:, 0])
    score = jnp.where(rho[:, 2] > 1, jnp.nan, score)
    return score, rho[:, 1] <= 0


@functools.lru_cache(maxsize=None)
def compiled_run(name, evaluate, threshold, stop_at_first, iterations):
    strategy = search.make(name, population_size=K)
    options = dict(evaluate_fn=evaluate, threshold=threshold, stop_at_first=stop_at_first, iterations=iterations)
    fn = functools.partial(search.run, strategy, **options)
    return strategy, jax.jit(fn)


TRACES = collections.Counter()  # (strategy name, batch shape) -> times step was traced


@functools.lru_cache(maxsize=None)
def compiled_step(name, evaluate, threshold, stop_at_first):
    strategy = search.make(name, population_size=K)

    def counted(rho):
        TRACES[name, rho.shape] += 1
        return evaluate(rho)

    fn = functools.partial(search.step, strategy, evaluate_fn=counted, threshold=threshold, stop_at_first=stop_at_first)
    return strategy, jax.jit(fn)


def run_search(name, evaluate=distance, threshold=0.8, stop_at_first=True, iterations=60, runs=16, seed=0):
    strategy, fn = compiled_run(name, evaluate, threshold, stop_at_first, iterations)
    states = search.init_runs(strategy, jax.random.key(seed), LOWS, HIGHS, runs)
    return fn(states)


def assert_trees_close(a, b, exact=False):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        if exact or not jnp.issubdtype(x.dtype, jnp.floating):
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


# ---- REINFORCE gradient ------------------------------------------------------------------------------


@pytest.mark.parametrize("baseline", ["batch_mean", "zero"])
def test_policy_gradient_matches_analytic_gradient_of_quadratic(baseline):
    # loss(x) = ||x - c||^2, x ~ N(mu, s^2 I): E = ||mu - c||^2 + n s^2,
    # dE/dmu = 2 (mu - c), dE/dlog s = 2 n s^2.
    mu = jnp.array([0.3, -0.5, 1.0])
    c = jnp.array([-0.2, 0.4, 0.5])
    log_sigma = jnp.log(jnp.sqrt(0.05))
    rho = mu + jnp.exp(log_sigma) * jax.random.normal(jax.random.key(0), (400_000, 3))
    loss = jnp.sum((rho - c) ** 2, axis=-1)
    b = jnp.mean(loss) if baseline == "batch_mean" else 0.0
    g_mu, g_log_sigma = search.policy_gradient(mu, log_sigma, rho, loss, jnp.ones(loss.shape, bool), b)
    np.testing.assert_allclose(g_mu, 2 * (mu - c), atol=0.02 if baseline == "batch_mean" else 0.05)
    assert float(g_log_sigma) == pytest.approx(2 * 3 * 0.05, abs=0.01 if baseline == "batch_mean" else 0.05)


def test_policy_gradient_ignores_invalid_samples():
    mu, log_sigma = jnp.zeros(2), jnp.zeros(())
    rho = jnp.array([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    scores = jnp.array([2.0, 4.0, jnp.nan])
    valid = jnp.array([True, True, False])
    g_mu, g_log_sigma = search.policy_gradient(mu, log_sigma, rho, scores, valid, 3.0)
    # ((2-3) * [1,0] + (4-3) * [0,1]) / 2
    np.testing.assert_allclose(g_mu, [-0.5, 0.5])
    assert float(g_log_sigma) == pytest.approx(((2 - 3) * (1 - 2) + (4 - 3) * (1 - 2)) / 2)


def test_reinforce_tell_is_one_optimizer_step_on_the_policy_gradient():
    strategy = search.reinforce(population_size=4, optimizer=optax.sgd(0.01), baseline="mean")
    state = strategy.init(jax.random.key(0), jnp.asarray(LOWS), jnp.asarray(HIGHS))
    rho, state = strategy.ask(jax.random.key(1), state)
    scores = jnp.sum(rho, axis=-1)
    valid = jnp.ones(4, bool)
    told = strategy.tell(state, rho, scores, valid)
    g_mu, _ = search.policy_gradient(state.mu, state.log_sigma, rho, scores, valid, jnp.mean(scores))
    np.testing.assert_allclose(told.mu, state.mu - 0.01 * g_mu, rtol=1e-5)
    assert float(told.log_sigma) == float(state.log_sigma)  # sigma is fixed by default
    learned = search.reinforce(population_size=4, optimizer=optax.sgd(0.01), learn_sigma=True)
    assert float(learned.tell(state, rho, scores, valid).log_sigma) != float(state.log_sigma)


# ---- baselines' sampling distributions ---------------------------------------------------------------


def test_baseline_sampling_distributions():
    lows, highs = jnp.array([0.0, -1.0]), jnp.array([1.0, 3.0])
    count = 20_000
    for name, mean, std in [
        ("uniform", [0.5, 1.0], np.array([1.0, 4.0]) / np.sqrt(12)),
        ("gaussian", [0.5, 1.0], [0.5, 2.0]),
        ("random_opt", [0.5, 1.0], [0.1, 0.4]),
    ]:
        strategy = search.make(name, population_size=count)
        state = strategy.init(jax.random.key(0), lows, highs)
        rho, _ = strategy.ask(jax.random.key(1), state)
        np.testing.assert_allclose(rho.mean(0), mean, atol=0.03 * np.max(std) / 0.3, err_msg=name)
        np.testing.assert_allclose(rho.std(0), std, rtol=0.03, err_msg=name)
        if name != "gaussian":
            assert bool(jnp.all((rho >= lows) & (rho <= highs))), name


# ---- search efficiency ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uniform_queries():
    runs, _ = run_search("uniform")
    return int(runs.queries.sum()), int(runs.done.sum())


@pytest.mark.parametrize("name", ["reinforce", "reinforce_ranked", "random_opt", "gradient", "evosax:CMA_ES",
                                  "evosax:SNES"])
def test_strategy_finds_the_region_with_fewer_queries_than_uniform(name, uniform_queries):
    queries, found = uniform_queries
    runs, _ = run_search(name)
    assert found <= 4  # the region is small: uniform sampling rarely hits it within 480 queries
    assert int(runs.done.sum()) >= 14, name
    assert int(runs.queries.sum()) < 0.5 * queries, (name, int(runs.queries.sum()), queries)


# ---- exact bookkeeping ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stop_at_first", [True, False])
def test_query_counts_are_exact(stop_at_first):
    runs, records = run_search("reinforce", stop_at_first=stop_at_first)
    iterations, runs_count = records.scores.shape[:2]
    scores, valid = np.asarray(records.scores), np.asarray(records.valid)  # (I, R, K)
    hit = valid & (scores < 0.8)
    last_iterations = []
    for r in range(runs_count):
        hit_iterations = np.flatnonzero(hit[:, r].any(-1))
        last = hit_iterations[0] if (stop_at_first and hit_iterations.size) else iterations - 1
        last_iterations.append(last)
        assert int(runs.queries[r]) == K * (last + 1)
        assert int(runs.iterations[r]) == last + 1
        np.testing.assert_array_equal(records.counted[:, r], np.arange(iterations) <= last)
        assert int(runs.adversarials[r]) == hit[: last + 1, r].sum()
        if hit_iterations.size:
            i = hit_iterations[0]
            assert int(runs.first_adversarial_query[r]) == K * i + np.argmax(hit[i, r]) + 1
            assert bool(runs.done[r]) == stop_at_first
        else:
            assert int(runs.first_adversarial_query[r]) == -1 and not bool(runs.done[r])
        seen = scores[: last + 1, r].reshape(-1)
        assert float(runs.best_score[r]) == pytest.approx(seen.min())
        assert int(runs.best_query[r]) == np.argmin(seen) + 1
        np.testing.assert_allclose(runs.best_rho[r], records.rho[:, r].reshape(-1, N)[np.argmin(seen)])
    np.testing.assert_array_equal(np.asarray(records.adversarial), hit & np.asarray(records.counted)[..., None])
    if stop_at_first:  # runs stopped at different iterations
        assert len(set(last_iterations)) > 3
    else:
        assert int(runs.adversarials.sum()) > int(runs.done.sum())


def host(tree):
    """A pytree as numpy arrays (PRNG keys as their raw data)."""
    raw = lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
    return jax.tree.map(lambda x: np.asarray(raw(x)), tree)


def test_stopped_runs_are_masked():
    strategy, step = compiled_step("reinforce", distance, 0.8, True)
    states = search.init_runs(strategy, jax.random.key(0), LOWS, HIGHS, 16)
    history = [host(states)]
    for _ in range(40):
        states, _ = step(states)
        history.append(host(states))
    done_at = [next((i for i, s in enumerate(history) if s.done[r]), None) for r in range(16)]
    assert sum(d is not None and d < 35 for d in done_at) >= 8
    for r, d in enumerate(done_at):
        if d is None:
            continue
        for later in history[d + 1 :]:
            for frozen_leaf, later_leaf in zip(jax.tree.leaves(history[d]), jax.tree.leaves(later)):
                np.testing.assert_array_equal(later_leaf[r], frozen_leaf[r])


@pytest.mark.parametrize("name", ["reinforce", "reinforce_ranked", "random_opt", "cem", "evosax:CMA_ES"])
def test_invalid_samples_are_counted_never_adversarial(name):
    runs, records = run_search(name, corrupted, -1.5, False, 10, 4)
    rho = np.asarray(records.rho)
    invalid = (rho[..., 1] > 0) | (rho[..., 2] > 1)
    np.testing.assert_array_equal(~np.asarray(records.valid), invalid)
    np.testing.assert_array_equal(runs.invalid, invalid.sum((0, 2)))
    assert int(runs.invalid.sum()) > 0
    np.testing.assert_array_equal(records.adversarial, ~invalid & (rho[..., 0] < -1.5))
    assert bool(jnp.all(runs.best_score > -2.0001))  # the -100 / NaN scores never become the best
    floats = [x for x in jax.tree.leaves(runs.strategy) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in floats)


@pytest.mark.parametrize("name", ["reinforce", "reinforce_ranked", "random_opt", "cem", "evosax:CMA_ES"])
def test_all_invalid_batch_leaves_state_unchanged(name):
    strategy = search.make(name, population_size=K)

    @jax.jit
    def ask_then_tell_nothing_valid():
        state = strategy.init(jax.random.key(0), jnp.asarray(LOWS), jnp.asarray(HIGHS))
        rho, asked = strategy.ask(jax.random.key(1), state)
        return asked, strategy.tell(asked, rho, -jnp.ones(K), jnp.zeros(K, bool))

    asked, told = ask_then_tell_nothing_valid()
    assert_trees_close(told, asked, exact=True)


def test_same_seed_same_results_other_seed_differs():
    a, _ = run_search("reinforce", seed=5)
    b, _ = run_search("reinforce", seed=5)
    c, _ = run_search("reinforce", seed=6)
    assert_trees_close(a, b, exact=True)
    assert not np.array_equal(a.strategy.mu, c.strategy.mu)


@pytest.mark.parametrize("name", ALL)
def test_python_loop_equals_scan(name):
    runs_scan, records = run_search(name)
    strategy, step = compiled_step(name, distance, 0.8, True)
    states = search.init_runs(strategy, jax.random.key(0), LOWS, HIGHS, 16)
    for i in range(records.scores.shape[0]):
        states, record = step(states)
        np.testing.assert_allclose(record.rho, records.rho[i], rtol=1e-5, atol=1e-5)
    assert_trees_close(states, runs_scan)
    assert TRACES[name, (16 * K, N)] == 1  # the state keeps its types: one compilation for every step


@pytest.mark.parametrize("name", ["reinforce", "gradient", "evosax:CMA_ES"])
def test_vmap_over_runs_equals_loop_over_runs(name):
    strategy, step = compiled_step(name, distance, 0.8, True)
    states = search.init_runs(strategy, jax.random.key(0), LOWS, HIGHS, 16)
    singles = [jax.tree.map(lambda x: x[r : r + 1], states) for r in range(3)]
    for _ in range(4):
        states, _ = step(states)
        singles = [step(s)[0] for s in singles]
    for r, single in enumerate(singles):
        assert_trees_close(jax.tree.map(lambda x: x[r : r + 1], states), single)


def test_runs_do_not_depend_on_the_number_of_runs():
    strategy = search.make("uniform", population_size=K)
    init = jax.jit(functools.partial(search.init_runs, strategy), static_argnums=3)
    few = init(jax.random.key(0), LOWS, HIGHS, 2)
    many = init(jax.random.key(0), LOWS, HIGHS, 5)
    assert_trees_close(few, jax.tree.map(lambda x: x[:2], many), exact=True)


# ---- registry ------------------------------------------------------------------------------------------


def test_registry_names_and_errors():
    assert set(ALL) <= set(search.names())
    with pytest.raises(ValueError, match="^--strategy: unknown strategy 'bayes'"):
        search.make("bayes", population_size=4)
    with pytest.raises(ValueError, match="^--strategy: unknown evosax algorithm 'Nope'"):
        search.make("evosax:Nope", population_size=4)
    with pytest.raises(ValueError, match=r"^--strategy=reinforce: unknown option\(s\) \['sigma'\]"):
        search.make("reinforce", population_size=4, sigma=0.1)
    with pytest.raises(ValueError, match="^--strategy=reinforce: baseline must be one of"):
        search.make("reinforce", population_size=4, baseline="median")
    with pytest.raises(ValueError, match="^--samples_per_iteration: must be >= 1"):
        search.make("uniform", population_size=0)
    odd = search.make("evosax:Open_ES", population_size=5)
    with pytest.raises(ValueError, match="^--strategy=evosax:Open_ES with --samples_per_iteration=5: .*even"):
        odd.init(jax.random.key(0), jnp.asarray(LOWS), jnp.asarray(HIGHS))


def test_search_over_a_param_space_with_decode_in_the_loop():
    from simadv_jax.params import ParamSpace

    space = ParamSpace.parse("shape[0:4]=-2:2,yaw=-1:1,pitch=-0.25:0.25", num_shape=10, num_texture=10, num_expression=0)
    strategy = search.make("reinforce", population_size=K)

    def evaluate(rho):  # adversarial iff the probe's yaw exceeds 1.3 rad (about 0.83 paper units)
        scene = space.decode(rho)
        return -scene.probe.yaw + 0.01 * jnp.sum(scene.probe.shape**2, -1), jnp.ones(rho.shape[0], bool)

    runs = search.init_runs(strategy, jax.random.key(0), space.lows, space.highs, 4)
    runs, _ = jax.jit(lambda r: search.run(strategy, r, evaluate, threshold=-1.3, stop_at_first=True, iterations=30))(runs)
    assert bool(runs.done.all())
    for r in range(4):
        named = space.to_dict(runs.best_rho[r])
        assert named["yaw"] > 1.3 / (np.pi / 2) - 0.02
