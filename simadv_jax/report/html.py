"""report.html: one static page linking a search's table, figures and saved adversarials."""
from __future__ import annotations

import html


def _table(markdown: str) -> str:
    """The markdown table of `table_markdown` as HTML (header text becomes a paragraph)."""
    out, rows = [], [line for line in markdown.splitlines() if line.startswith("|")]
    for line in markdown.splitlines():
        if line and not line.startswith("|"):
            out.append(f"<p>{html.escape(line)}</p>")
    out.append("<table>")
    for i, row in enumerate(rows):
        if i == 1:
            continue  # the alignment row
        cells = [html.escape(c.strip()) for c in row.strip("|").split("|")]
        tag = "th" if i == 0 else "td"
        out.append("<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def report(results: dict, table: str) -> str:
    """The page's HTML text (relative links, so the directory can be moved)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>simadv-jax search</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}img{max-width:100%}</style></head><body>",
        "<h1>Adversarial search</h1>",
        _table(table),
        "<p><a href='results.json'>results.json</a> &middot; <a href='events.jsonl'>events.jsonl</a> &middot; "
        "<a href='config.flags'>config.flags</a> &middot; <a href='table.md'>table.md</a></p>",
        "<h2>Pairs</h2><img src='adversarials.png'>",
        "<h2>Trajectories</h2><img src='trajectories.png'>",
        "<h2>One run over time</h2><img src='sequence.png'>",
        "<h2>Saved adversarials</h2><table><tr><th>#</th><th>strategy</th><th>run</th><th>iteration</th>"
        "<th>query</th><th>score</th><th>reference</th><th>probe</th><th>params</th></tr>",
    ]
    for name, summary in results["strategies"].items():
        for entry in summary["adversarials"]:
            if "files" not in entry:
                continue
            files = {k: "adversarials/" + v for k, v in entry["files"].items()}
            parts.append(
                f"<tr><td>{entry['index']}</td><td>{html.escape(name)}</td><td>{entry['run']}</td>"
                f"<td>{entry['iteration']}</td><td>{entry['query']}</td><td>{entry['score']:.4f}</td>"
                f"<td><img src='{files['reference']}'></td><td><img src='{files['probe']}'></td>"
                f"<td><a href='{files['params']}'>json</a></td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)
