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
           "samples that rendered no face or gave a non-finite score (never counted as adversarial)"),
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
    return "\n".join(lines) + "\n"
