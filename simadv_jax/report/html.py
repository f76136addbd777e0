"""report.html: one static page that answers "where does my recognizer break?" from a search's results (plain
dict) and the figures beside it: the setting and what a score means, the table with every column explained,
where the adversarials lie per parameter, the figures, and every saved pair with its named parameters."""
from __future__ import annotations

import html

from simadv_jax.report.table import (COLUMNS, alignment_sentence, failure_rate_sentence, head_text, modes_lines,
                                     rarity_sentence, rescore_sentence, rows, score_sentence, search_caution)

_STYLE = ("body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}"
          "td.left,th.left{text-align:left}img{max-width:100%}code{background:#f4f4f4;padding:0 3px}"
          "dt{font-weight:bold}dd{margin:0 0 .4em 1.5em}.params{font-family:monospace;font-size:85%}")


def _e(value) -> str:
    return html.escape(str(value))


def _table(results: dict) -> str:
    head = "".join(f"<th title='{_e(c.meaning)}'>{_e(c.header)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows(results))
    return f"<table><tr>{head}</tr>{body}</table><p>(The columns are explained at the end of the page.)</p>"


def _columns() -> str:
    meanings = "".join(f"<dt>{_e(c.header)}</dt><dd>{_e(c.meaning)}</dd>" for c in COLUMNS)
    return f"<h2>Columns</h2><dl>{meanings}</dl>"


def _glance(results: dict, lines: int = 3) -> str:
    """The answer first: how often the recognizer failed, and the parameters its failures crowd into."""
    queries = sum(s["queries"] for s in results["strategies"].values())
    found = sum(s["adversarials_found"] for s in results["strategies"].values())
    items = [f"<li>{found} adversarial(s) in {queries} queries over all strategies.</li>"]
    rarity = rarity_sentence(results)
    items += [f"<li>{_e(rarity)}</li>"] if rarity else []
    breaks = results.get("where_it_breaks", {}).get("summary", [])
    items += [f"<li>{_e(line)}</li>" for line in breaks[:lines]]
    return f"<h2>At a glance</h2><ul>{''.join(items)}</ul>"


def _breaks(results: dict) -> str:
    breaks = results.get("where_it_breaks")
    if not breaks:
        return ""
    items = "".join(f"<li>{_e(line)}</li>" for line in breaks["summary"])
    return ("<h2>Where it breaks</h2><p>Per searched parameter, the range its adversarials span against the range "
            "searched, most concentrated first (a parameter whose adversarials crowd into a small part of its range "
            "is where the recognizer fails).</p>"
            f"<ul>{items}</ul><img src='where_it_breaks.png' alt='adversarials per parameter'>")


def _modes(results: dict) -> str:
    """Failure modes: per mode its size, where it lies, the parameters that matter and its representative pair."""
    lines = modes_lines(results)
    if not lines:
        return ""
    body = []
    for mode, line in zip(results["failure_modes"]["modes"], lines[1:]):
        index = mode["representative"]["index"]  # the saved pair's number, None if it was not saved
        files = next((entry["files"] for summary in results["strategies"].values() for entry in summary["adversarials"]
                      if index is not None and entry.get("index") == index), None)
        pair = ("".join(f"<img src='adversarials/{_e(files[side])}' alt='{side}'>" for side in ("reference", "probe"))
                if files else "(not saved)")
        strategies = ", ".join(f"{_e(name)} {count}" for name, count in mode["by_strategy"].items())
        body.append(f"<tr><td>{mode['mode']}</td><td>{mode['count']}</td><td>{mode['runs']}</td>"
                    f"<td class='left'>{strategies}</td><td class='left'>{_e(line)}</td><td>{pair}</td></tr>")
    return (f"<h2>Failure modes</h2><p>{_e(lines[0])}</p><table><tr><th>mode</th><th>adversarials</th><th>runs</th>"
            "<th class='left'>by strategy</th><th class='left'>where, and what matters</th><th>representative "
            f"(reference, probe)</th></tr>{''.join(body)}</table>")


def _params(params: dict) -> str:
    return "<br>".join(f"{_e(name)} = {value:.3f}" for name, value in params.items())


def _pairs(results: dict) -> str:
    threshold = results["recognizer"]["threshold"]
    lines = ["<h2>Saved adversarials</h2>",
             f"<p>Each row: the reference image (left) and the probe image the recognizer got wrong, its score "
             f"(threshold {threshold:.3f}) and the parameters of the pair, in the searched space's units "
             "(coefficients in standard deviations, angles in units of pi/2). "
             "<a href='adversarials/'>adversarials/</a> holds the lossless PNGs and a JSON file per pair "
             "(<code>python -m launch.render_params FILE</code> re-renders it).</p>",
             "<table><tr><th>#</th><th class='left'>strategy</th><th>run</th><th>iteration</th><th>query</th>"
             "<th>score</th><th>reference</th><th>probe</th><th class='left'>parameters</th></tr>"]
    for name, summary in results["strategies"].items():
        for entry in summary["adversarials"]:
            if "files" not in entry:
                continue
            files = {k: "adversarials/" + v for k, v in entry["files"].items()}
            lines.append(
                f"<tr><td>{entry['index']}</td><td class='left'>{_e(name)}</td><td>{entry['run']}</td>"
                f"<td>{entry['iteration']}</td><td>{entry['query']}</td><td>{entry['score']:.4f}</td>"
                f"<td><img src='{_e(files['reference'])}' alt='reference'></td>"
                f"<td><img src='{_e(files['probe'])}' alt='probe'></td>"
                f"<td class='left params'>{_params(entry['params'])}<br><a href='{_e(files['params'])}'>json</a>"
                "</td></tr>")
    lines.append("</table>")
    return "\n".join(lines)


def report(results: dict) -> str:
    """The page's HTML text (relative links, so the directory can be moved)."""
    recognizer, space = results["recognizer"], results["space"]
    rescore = rescore_sentence(results)
    caution = search_caution(results)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>simadv-jax search</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Adversarial search</h1>",
        f"<p>Recognizer <code>{_e(recognizer['name'])}</code> ({_e(recognizer['metric'])}, input "
        f"{recognizer['input_size']} px, template {_e(recognizer['template'])}), head {_e(head_text(results['head']))}"
        f", searched space <code>{_e(space['spec'])}</code>.</p>",
        f"<p>{_e(score_sentence(results))}</p>",
        f"<p>{_e(alignment_sentence(results))}</p>",
        f"<p><b>{_e(caution)}</b></p>" if caution else "",
        _glance(results),
        _table(results),
        f"<p>{_e(rescore)}</p>" if rescore else "",
        f"<p>{_e(failure_rate_sentence(results))}</p>" if "failure_rate" in results else "",
        _breaks(results),
        _modes(results),
        "<h2>Pairs</h2><p>Adversarial pairs (red border; reference left, probe right), then the best pair of runs "
        "that found none (green).</p><img src='adversarials.png' alt='pairs'>",
        "<h2>Trajectories</h2><p>Per run, the most adversarial score of each iteration; the dashed line is the "
        "threshold.</p><img src='trajectories.png' alt='trajectories'>",
        "<h2>One run over time</h2><img src='sequence.png' alt='sequence'>",
        _pairs(results),
        _columns(),
        "<p><a href='results.json'>results.json</a> &middot; <a href='events.jsonl'>events.jsonl</a> &middot; "
        "<a href='config.flags'>config.flags</a> &middot; <a href='table.md'>table.md</a></p>",
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)
