"""The table of an adversarial search (the paper's Table 2/3 layout) from the results.json payload (plain dict):
its columns with their meanings, the sentence that says what a score is, as Markdown (table.md) and as cells
for the HTML report."""
from __future__ import annotations

import math
from typing import Callable, NamedTuple


class Column(NamedTuple):
    """header: the column's title. cell: strategy summary -> text. meaning: one sentence for the reader."""

    header: str
    cell: Callable[[dict], str]
    meaning: str


def _number(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


COLUMNS = (
    Column("Strategy", lambda s: s["name"], "the search strategy (all strategies share seeds and budget)"),
    Column("Queries", lambda s: str(s["queries"]),
           "samples evaluated: every sample of an iteration of a run that had not stopped"),
    Column("Adversarials", lambda s: str(s["adversarials_found"]),
           "valid samples the recognizer got wrong (past the threshold)"),
    Column("Accuracy (%)", lambda s: _number(None if s["accuracy"] is None else 100 * s["accuracy"], ".1f"),
           "verification accuracy over the valid samples: the share the recognizer got right"),
    Column("Mean score", lambda s: _number(s["mean_score"], ".3f"), "mean score of the valid samples"),
    Column("Queries / adversarial", lambda s: _number(s["queries_per_adversarial"], ".1f"),
           "queries spent per adversarial found (lower is a more efficient search)"),
    Column("Runs with adversarial", lambda s: f"{s['runs_with_adversarial']}/{s['runs']}",
           "independent runs that found at least one adversarial"),
    Column("Median queries to first", lambda s: _number(s["median_queries_to_first_adversarial"], ".0f"),
           "median, over the runs that found one, of the queries until the first adversarial"),
    Column("Invalid", lambda s: str(s["invalid"]),
           "samples that rendered no face, whose face the pipeline did not acquire (--alignment=pipeline), or that "
           "gave a non-finite score (never counted as adversarial)"),
    Column("Clipped", lambda s: str(s["clipped"]),
           "samples a strategy proposed outside the searched box, clipped to it before rendering"),
)


def score_sentence(results: dict) -> str:
    """What a score means, its threshold and which side is an error, in words."""
    recognizer, scenario = results["recognizer"], results["scenario"]
    threshold = recognizer["threshold"]
    if recognizer["metric"] == "euclidean":
        score = (f"score = minus the Euclidean distance between the two images' descriptors (higher = more alike); "
                 f"same person when score >= {threshold:.3f}, i.e. distance <= {-threshold:.3f}")
    else:
        score = f"score = cosine similarity of the two images' embeddings (higher = more alike); same person when " \
                f"score >= {threshold:.3f}"
    if scenario == "impostor":
        error = "reference and probe show two different people; an adversarial is a false match (score above it)"
    else:
        error = "reference and probe show the same person; an adversarial is a false non-match (score below it)"
    return f"{score}. Scenario {scenario}: {error}."


def rows(results: dict) -> list[list[str]]:
    """One row of cells per strategy, in COLUMNS order."""
    return [[column.cell({"name": name, **summary}) for column in COLUMNS]
            for name, summary in results["strategies"].items()]


def rescore_sentence(results: dict) -> str:
    """The --rescore_with result in words ('' without one)."""
    if "rescore" not in results:
        return ""
    r = results["rescore"]
    return (f"Rescored with {r['recognizer']} (threshold {r['threshold']:.3f}): {r['still_adversarial']}/"
            f"{r['rescored']} saved adversarials are still adversarial.")


COMMON_FAILURES = 0.01  # a uniform failure rate at or above this: blind sampling finds failures about as fast


def rarity_sentence(results: dict) -> str:
    """How common failures are in the searched space (the uniform strategy's adversarials per valid sample,
    else the --estimate_failure_rate estimate) and what that means for the strategies' comparison ('' with
    neither)."""
    uniform = results["strategies"].get("uniform")
    if uniform is not None and uniform["valid_samples"]:
        rate = uniform["adversarials_found"] / uniform["valid_samples"]
        source = f"uniform sampling failed on {uniform['adversarials_found']} of its {uniform['valid_samples']} valid " \
            "samples"
    elif "failure_rate" in results:
        rate, source = results["failure_rate"]["rate"], "the estimated failure rate under uniform sampling"
    else:
        return ""
    if rate >= COMMON_FAILURES:
        meaning = ("failures are common in this space, so blind sampling finds one about as fast as any search, and "
                   "fewer queries to a first adversarial for uniform says this about the space, not that search is "
                   "weak; adversarial search pays off where failures are rare (python -m launch.bench "
                   "--what=efficiency compares the strategies on spaces that fail 10%, 1% and 0.1% of the time)")
    else:
        meaning = "failures are rare in this space, where a search's lead over blind sampling is largest"
    return f"How common failures are: {source} ({100 * rate:.3g}%); {meaning}."


def head_text(head: dict) -> str:
    """A payload's "head" (flame.embedded.head_record) in words: "MODEL / TEXTURE (fingerprints F / G)", without
    the fingerprints for a payload that predates them."""
    fingerprints = head.get("fingerprints")
    shown = f" (fingerprints {fingerprints['model']} / {fingerprints['texture']})" if fingerprints else ""
    return f"{head['model']} / {head['texture']}{shown}"


def judged_sentence(head: dict, attacked) -> str:
    """A flag for a study that attacks the recognizer whose scores judged the head's identity space, or one that
    shares its network (payload "head" with "judged_with" and "judged_family", see simadv_jax.setup.head_record; a
    payload without "judged_family" counts the judge alone; attacked: recognizer names), '' otherwise."""
    head = head or {}
    judge = head.get("judged_with")
    hits = [name for name in attacked if name in (head.get("judged_family") or [judge])]
    if not judge or not hits:
        return ""
    hit = judge if judge in hits else hits[0]
    sibling = "" if hit == judge else f", another checkpoint of {judge}'s network"
    return (f"Caution: the head's identity space was designed with {judge}'s scores, and this study attacks "
            f"{hit}{sibling}: its failures over identity parameters are not independent of how the head was built "
            "(other recognizers' are).")


def search_caution(results: dict) -> str:
    """`judged_sentence` for a search, which attacks its recognizer, --rescore_with's and --transfer_to's."""
    config = results.get("config", {})
    attacked = [results["recognizer"]["name"], *([config["rescore_with"]] if config.get("rescore_with") else []),
                *config.get("transfer_to", [])]
    return judged_sentence(results.get("head"), attacked)


def failure_rate_sentence(results: dict) -> str:
    """The --estimate_failure_rate result in words ('' without one)."""
    if "failure_rate" not in results:
        return ""
    f = results["failure_rate"]
    low, high = f["interval"]
    return (f"Failure rate under uniform sampling of the space: {100 * f['rate']:.3g}% "
            f"[{100 * low:.3g}%, {100 * high:.3g}%] ({100 * f['confidence']:.0f}% interval), estimated by importance "
            f"sampling with {f['queries']} queries around {f['centers']} points the search found ({f['hits']} of them "
            f"adversarial); uniform sampling would need about {f['uniform_equivalent_queries']} queries for the same "
            "precision.")


def modes_lines(results: dict) -> list[str]:
    """The failure modes in words, one line per described mode ([] without them)."""
    modes = results.get("failure_modes")
    if not modes:
        return []
    other = (f" (and {modes['other_modes']} smaller ones with {modes['other_adversarials']} adversarials)"
             if modes["other_modes"] else "")
    return [f"{modes['count']} failure mode(s){other}: adversarials more than {100 * modes['cutoff']:.0f}% of each "
            "range apart (RMS, average linkage) are different modes; the parameters named are those the similarity "
            "is most sensitive to there.", *modes["summary"]]


def table_markdown(results: dict) -> str:
    """table.md: the setting, the score sentence, the table, the column meanings and the rescore result."""
    recognizer = results["recognizer"]
    lines = [
        f"Recognizer `{recognizer['name']}` (threshold {recognizer['threshold']:.3f}, {recognizer['metric']}), "
        f"scenario {results['scenario']}, space `{results['space']['spec']}`",
        "",
        score_sentence(results),
        "",
        "| " + " | ".join(column.header for column in COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    lines += ["", *(f"- {column.header}: {column.meaning}" for column in COLUMNS)]
    if "rescore" in results:
        lines += ["", rescore_sentence(results)]
    if "failure_rate" in results:
        lines += ["", failure_rate_sentence(results)]
    lines += [line for sentence in (rarity_sentence(results), search_caution(results)) if sentence
              for line in ("", sentence)]
    modes = modes_lines(results)
    if modes:
        lines += ["", modes[0], "", *(f"- {line}" for line in modes[1:])]
    return "\n".join(lines) + "\n"


def alignment_sentence(results: dict) -> str:
    """How the probes were cropped (results.json `alignment`; older results: oracle)."""
    alignment = results.get("alignment") or {"name": "oracle", "box_source": None}
    if alignment["name"] == "oracle":
        return "Alignment: oracle (each image rendered straight into the recognizer's aligned crop)."
    return (f"Alignment: pipeline (a photo cropped as deployed dlib does; face box from {alignment['box_source']}, "
            "5-point shape predictor, 150x150 chip). A pair whose face was not acquired is a failure to acquire, "
            "counted as invalid, never as a false non-match" + _acquisition(results) + ".")


def _acquisition(results: dict) -> str:
    """'; failures to acquire: NAME a of its b invalid samples, ...' ('' without results.json `acquisition`)."""
    counts = results.get("acquisition")
    if not counts:
        return ""
    return "; failures to acquire: " + ", ".join(
        f"{name} {c['failures_to_acquire']} of its {c['invalid']} invalid samples" for name, c in counts.items())
