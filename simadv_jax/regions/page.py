"""report.html of a regions run: one static page from region.json's payload (plain dict) and the figures beside
it - the setting, each region in the user's words, the coverage curve, the landscapes and the renders."""
from __future__ import annotations

import html

from simadv_jax.report.table import head_text, judged_sentence

_STYLE = ("body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:.5em 0}"
          "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td.left,th.left{text-align:left}"
          "img{max-width:100%}code{background:#f4f4f4;padding:0 3px}")


def _e(value) -> str:
    return html.escape(str(value))


def _table(header: list, rows: list) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _setting(results: dict) -> str:
    recognizer = results["recognizer"]
    refine = f", refined {results['refine']}x on the boundary" if results["refine"] > 1 else ""
    return (f"<p>Recognizer <code>{_e(recognizer['name'])}</code> ({_e(recognizer['metric'])}, threshold "
            f"{recognizer['threshold']:.3f} on the score; scenario {_e(results['scenario'])}), head "
            f"{_e(head_text(results['head']))}, space "
            f"<code>{_e(results['space']['spec'])}</code>. Flooded dimensions {_e(', '.join(results['dims']))} on a "
            f"grid of spacing {_e(', '.join(f'{s:g}' for s in results['spacing']))}{refine}, in the space's units "
            "(coefficients in standard deviations, angles in units of pi/2). A grid point is in a region when the "
            "recognizer fails on it and it connects to the seed through grid neighbours that fail too.</p>")


def _region(entry: dict) -> str:
    seeds = ", ".join(str(i) for i in entry["seeds"])
    extent = _table(["dimension", "min", "max", "searched", "reaches"],
                    [[name, f"{e['min']:.3f}", f"{e['max']:.3f}", f"[{e['searched'][0]:g}, {e['searched'][1]:g}]",
                      " and ".join(side for side, hit in (("low", e["reaches_low"]), ("high", e["reaches_high"]))
                                   if hit) or "-"] for name, e in entry["extent"].items()])
    passes = _table(["pass", "spacing", "points", "evaluations", "steps", "stopped by", "seconds"],
                    [[p["stage"], ", ".join(f"{s:g}" for s in p["spacing"]), p["size"], p["evaluations"], p["steps"],
                      p["stopped_by"] or "-", p["seconds"]] for p in entry["passes"]])
    lines = "".join(f"<li>{_e(line)}</li>" for line in entry["summary"])
    return (f"<h2>Region {entry['index']}</h2><p>Flooded from seed {entry['seed_index']} (score "
            f"{entry['seed_similarity']:.4f}); seeds inside it: {_e(seeds)}.</p><ul>{lines}</ul>{extent}{passes}")


def _landscape(results: dict) -> str:
    found = results["landscape"]
    if found is None:
        return ""
    rows = [[r["name"], f"{r['threshold']:.3f}", f"{100 * r['adversarial_fraction']:.1f}%", r["invalid"],
             f"[{r['score_range'][0]:.3f}, {r['score_range'][1]:.3f}]"] for r in found["recognizers"]]
    return (f"<h2>Landscape</h2><p>Every point of a {found['points']} x {found['points']} grid over "
            f"{_e(' and '.join(found['dims']))} (their whole searched range), the other dimensions at seed 0's "
            "values.</p>"
            + _table(["recognizer", "threshold", "grid failing", "invalid", "score range"], rows)
            + "<p>The score surface of the first recognizer with its threshold plane; red: the region's points "
              "through the seed (Figure 6 of the paper).</p><img src='landscape_surface.png' alt='surface'>"
              "<p>Each recognizer's loss margin (loss minus its threshold: below 0, red, it fails) on one colour "
              "scale; black: its threshold contour; red: the region's outline (Figure 7).</p>"
              "<img src='landscape_heatmaps.png' alt='heat maps'>")


def _judged(results: dict) -> str:
    """The caution when the flood or a landscape attacks the recognizer that judged the head ('' otherwise)."""
    attacked = [results["recognizer"]["name"], *results["config"].get("recognizers", [])]
    sentence = judged_sentence(results.get("head"), attacked)
    return f"<p><b>{_e(sentence)}</b></p>" if sentence else ""


def report(results: dict) -> str:
    """The page's HTML text (relative links, so the directory can be moved)."""
    seeds = _table(["seed", "score", "region"], [[s["index"], f"{s['score']:.4f}", s["region"]]
                                                  for s in results["seeds"]])
    glance = "".join(f"<li>Region {r['index']}: {_e(r['summary'][0])}</li>" for r in results["regions"])
    links = " &middot; ".join(f"<a href='{_e(name)}'>{_e(name)}</a>" for name in results["files"]
                              if not name.endswith(".png"))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>simadv-jax regions</title>",
        f"<style>{_STYLE}</style></head><body><h1>Adversarial regions</h1>",
        _setting(results),
        _judged(results),
        f"<h2>At a glance</h2><p>{results['distinct_regions']} distinct region(s) from {len(results['seeds'])} "
        f"seed(s), {results['timing']['evaluations']} points scored.</p><ul>{glance}</ul>{seeds}",
        *(_region(entry) for entry in results["regions"]),
        "<h2>Coverage</h2><p>Region points found against points scored, per pass: where the curve flattens, more "
        "budget stops paying.</p><img src='coverage.png' alt='coverage'>",
        _landscape(results),
        f"<h2>Renders</h2><p>Region {results['montage_region']}: its seed, points inside, on its boundary and just "
        "outside it, each re-scored (red border: the recognizer fails; reference left, probe right).</p>"
        "<img src='montage.png' alt='montage'>",
        f"<p>{links}</p></body></html>",
    ]
    return "\n".join(part for part in parts if part)
