"""The validation report: one self-contained HTML page (plots inlined as SVG) a risk officer can read."""

from __future__ import annotations

import html
import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from iotfin.risk.woe import BinnedFeature, Scaling, WoeLinear, logit

CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.fig{display:inline-block;vertical-align:top;margin:0 1em 1em 0}
h2{border-bottom:2px solid #246;padding-bottom:4px;margin-top:2em}.muted{color:#666}"""


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt  # lazy: matplotlib loads only when this runs

    plt.rcParams["svg.fonttype"] = "none"
    buf = io.StringIO()
    # One draw (no bbox_inches="tight", which draws twice) and text kept as text: ~5× faster than the defaults.
    fig.savefig(buf, format="svg")
    plt.close(fig)
    text = buf.getvalue()
    return f'<div class="fig">{text[text.index("<svg"):]}</div>'


def _fig(w: float = 5.0, h: float = 3.6):  # noqa: ANN202
    import matplotlib  # lazy: matplotlib loads only when this runs

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # lazy: matplotlib loads only when this runs

    fig, ax = plt.subplots(figsize=(w, h))
    fig.subplots_adjust(left=0.14, right=0.96, bottom=0.14, top=0.9)
    return fig, ax


def _table(header: list[str], rows: list[list[Any]], left: int = 1) -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{html.escape(_fmt(v))}</td>'
                                    for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return "—" if np.isnan(v) else f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"
    return str(v)


def _roc(y_by_part: Mapping[str, np.ndarray], preds: Mapping[str, Mapping[str, np.ndarray]]) -> str:
    from sklearn.metrics import roc_auc_score, roc_curve  # lazy: scikit-learn loads only when this runs

    out = []
    for part, models in preds.items():
        if part == "train":
            continue
        fig, ax = _fig()
        y = y_by_part[part]
        for name, p in models.items():
            fpr, tpr, _ = roc_curve(y, p)
            ks_i = int(np.argmax(tpr - fpr))
            ax.plot(fpr, tpr, label=f"{name} AUC {roc_auc_score(y, p):.3f}, KS {tpr[ks_i] - fpr[ks_i]:.3f}")
            ax.vlines(fpr[ks_i], fpr[ks_i], tpr[ks_i], linestyles=":", colors=ax.lines[-1].get_color())
        ax.plot([0, 1], [0, 1], color="#999", lw=0.8)
        ax.set(title=f"ROC — {part} (dotted: KS)", xlabel="false positive rate (goods)", ylabel="true positive rate (bads)")
        ax.legend(loc="lower right", fontsize=8)
        out.append(_svg(fig))
    return "".join(out)


def _ks_curve(y: np.ndarray, score: np.ndarray, title: str) -> str:
    fig, ax = _fig()
    order = np.argsort(score)
    s, yy = score[order], y[order]
    bads = np.cumsum(yy) / max(yy.sum(), 1)
    goods = np.cumsum(1 - yy) / max((1 - yy).sum(), 1)
    ax.plot(s, bads, label="bads (cumulative)")
    ax.plot(s, goods, label="goods (cumulative)")
    i = int(np.argmax(bads - goods))
    ax.vlines(s[i], goods[i], bads[i], colors="k", linestyles=":", label=f"KS {bads[i] - goods[i]:.3f} at {s[i]:.0f}")
    ax.set(title=title, xlabel="score (points)", ylabel="share")
    ax.legend(fontsize=8)
    return _svg(fig)


def _calibration(y: np.ndarray, models: Mapping[str, np.ndarray], part: str) -> str:
    fig, ax = _fig()
    for name, p in models.items():
        edges = np.unique(np.quantile(p, np.linspace(0, 1, 11)))
        b = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
        mp = np.array([p[b == i].mean() for i in np.unique(b)])
        my = np.array([y[b == i].mean() for i in np.unique(b)])
        ax.plot(mp, my, "o-", label=name)
    top = max(ax.get_xlim()[1], ax.get_ylim()[1])
    ax.plot([0, top], [0, top], color="#999", lw=0.8)
    ax.set(title=f"Calibration — {part} (deciles)", xlabel="mean predicted PD", ylabel="observed bad rate")
    ax.legend(fontsize=8)
    return _svg(fig)


def _distribution(y: np.ndarray, score: np.ndarray, part: str) -> str:
    fig, ax = _fig()
    bins = np.linspace(np.percentile(score, 0.5), np.percentile(score, 99.5), 30)
    ax.hist(score[y == 0], bins=bins, alpha=0.6, density=True, label="goods")
    ax.hist(score[y == 1], bins=bins, alpha=0.6, density=True, label="bads")
    ax.set(title=f"Score distribution — {part}", xlabel="score (points)", ylabel="density")
    ax.legend(fontsize=8)
    return _svg(fig)


def _bins_table(f: BinnedFeature, points: np.ndarray) -> str:
    """Bins as a table with inline bars for rows and bad rate: a chart per feature without a
    matplotlib figure each (drawing one costs ~1 s on this machine; a report has dozens)."""
    total = max(int(f.count.sum()), 1)
    rates = f.event / np.maximum(f.count, 1)
    top = max(float(rates.max()), 1e-9)
    rows = []
    for b in range(f.n_bins + 2):
        if b == f.unknown_bin:
            continue
        share = f.count[b] / total
        rate = rates[b] if f.count[b] else float("nan")
        bar = lambda w, c: f'<span style="display:inline-block;height:10px;width:{w:.0f}px;background:{c}"></span>'  # noqa: E731
        rows.append(f'<tr><td class="l">{html.escape(f.labels[b])}</td><td>{int(f.count[b]):,}</td>'
                    f'<td class="l">{bar(160 * share, "#9ab")} {share:.1%}</td>'
                    f'<td class="l">{bar(0 if np.isnan(rate) else 160 * rate / top, "#c55")} {_fmt(rate)}</td>'
                    f'<td>{f.woe[b]:.3f}</td><td>{points[b]:.1f}</td></tr>')
    head = "".join(f"<th>{h}</th>" for h in ("bin", "rows", "share of rows", "bad rate", "WoE", "points"))
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _search_section(manifest: Mapping[str, Any]) -> str:
    """Issue 23: every candidate with its cross-validated AUC and held-out AUC / KS / Gini with 95 %
    intervals, the scorecard's binning settings, the monotone policy, the search history and the time."""
    search = manifest.get("search")
    if not search:
        return ""
    cv, ci, cal = search["candidates"], manifest["intervals"], manifest["calibration"]
    part = ci["sample"]
    rows = [[name + (" (champion)" if name == manifest["champion"] else ""), c["cv_auc"], c["cv_auc_sd"],
             f"{ci[name]['auc']:.4f} [{ci[name]['auc_lo']:.4f}, {ci[name]['auc_hi']:.4f}]",
             f"{ci[name]['ks']:.4f} [{ci[name]['ks_lo']:.4f}, {ci[name]['ks_hi']:.4f}]",
             f"{ci[name]['gini']:.4f} [{ci[name]['gini_lo']:.4f}, {ci[name]['gini_hi']:.4f}]",
             cal[name]["brier"], cal[name]["hosmer_lemeshow"], cal[name]["hosmer_lemeshow_p"]] for name, c in cv.items()]
    cvd = search["cv"]
    out = [f"<h2>Model choice on cross-validation / 基于交叉验证的模型选择</h2><p>{cvd['repeats']}×{cvd['folds']}-fold "
           f"stratified cross-validation on the {cvd['rows']:,} training rows (seed {cvd['seed']}); the champion has the "
           f"highest mean out-of-fold AUC over every repeat all candidates have, the blend kept unless beaten by more than one standard error. Held-out figures on the {html.escape(part)} sample: AUC and Gini with DeLong "
           "95 % intervals, KS with a bootstrap interval; Hosmer–Lemeshow over PD deciles. The challenger's CV AUC "
           "is its best search trial's (selected among trials, so slightly optimistic; one number of rounds for every "
           "fold, chosen on the mean curve); the blend's weights are cross-fitted.</p>",
           _table(["candidate", "CV AUC", "CV sd", f"{part} AUC [95 %]", f"{part} KS [95 %]", f"{part} Gini [95 %]",
                   "Brier", "H–L χ²", "H–L p"], rows)]
    card = search["scorecard"]
    out.append("<h3>Scorecard binning search / 评分卡分箱搜索</h3>" + _table(
        ["setting", "optbinning options", "C", "CV AUC", "seconds"],
        [[k + (" (chosen)" if k == card["chosen"] else ""), str(v.get("binning", "")), v.get("C", ""),
          v.get("cv_auc", v.get("skipped", "")), v.get("seconds", "")] for k, v in card["settings"].items()]))
    inter = search.get("interactions")
    if inter:
        rows_i = []
        for key, what in (("interaction_2d", f"2D binning of {' × '.join(inter['pair'] or [])} (optbinning OptimalBinning2D)"),
                          ("segmented", f"segmented: one card per side of {inter.get('segment_by')}")):
            v = inter.get(key)
            if v:
                rows_i.append([what, v["cv_auc_base"], v["cv_auc"], f"{v['gain']:+.4f}", "yes" if v["pays"] else "no"])
        note = f" Not measured: {html.escape(str(inter['skipped']))}." if inter.get("skipped") else ""
        out.append("<h3>Interactions and segments / 交互项与分群评分卡</h3><p>Out-of-fold AUC against the scorecard's own "
                   f"logistic regression on the same folds; pays when the gain exceeds {inter['tolerance']}. The shipped "
                   "scorecard is one-dimensional (a paying interaction is reported, not yet scored)." + note + "</p>"
                   + (_table(["variant", "CV AUC, scorecard", "CV AUC, variant", "gain", "pays"], rows_i) if rows_i else ""))
    chal = search.get("challenger")
    if chal:
        mono = chal["monotone"]
        if mono.get("features"):
            out.append(f"<h3>Monotone constraints / 单调约束 (policy {html.escape(mono['policy'])})</h3><p>"
                       f"CV AUC at the fixed parameters: all trended features constrained "
                       f"{_fmt(mono.get('auc_all_constrained', float('nan')))}, none "
                       f"{_fmt(mono.get('auc_unconstrained', float('nan')))}"
                       + (f", the kept set {_fmt(mono['auc_chosen_constrained'])}" if "auc_chosen_constrained" in mono else "")
                       + f"; a feature is constrained when freeing it gains at most {mono['tolerance']} AUC, "
                       f"validated: the mean gain over the folds plus one standard error of it (a gain the folds "
                       f"cannot pin down counts against the constraint), and the kept set together costs at most "
                       f"that too. / 单调约束仅在其交叉验证成本（均值加一个标准误）不超过容差时施加。</p>" + _table(
                           ["feature", "trend", "AUC gained when free", "mean + 1 se", "constrained", "note"],
                           [[n, v["trend"], v.get("cost_auc", "—"), v.get("cost_bound", "—"), "yes" if v["constrained"] else "no",
                             v.get("why", "")] for n, v in mono["features"].items()]))
        trials = chal["trials"]
        fig, ax = _fig(6.0, 3.2)
        done = [(t["number"], t["auc"]) for t in trials if t["auc"] is not None and t["state"] == "complete"]
        if done:
            xs, ys = zip(*done, strict=True)
            ax.plot(xs, ys, "o", ms=3, label="trial")
            ax.plot(xs, np.maximum.accumulate(ys), "-", label="best so far")
        ax.set(title="Hyperparameter search (CV AUC)", xlabel="trial", ylabel="AUC")
        ax.legend(fontsize=8)
        states = {s: sum(t["state"] == s for t in trials) for s in ("complete", "pruned", "fail")}
        out.append(f"<h3>Challenger search / 挑战者模型参数搜索</h3><p>Optuna TPE (seed {search['seed']}), median "
                   f"pruning after each fold: {len(trials)} trials ({states['complete']} complete, {states['pruned']} "
                   f"pruned) in {chal['seconds']:.1f} s, stopped by {html.escape(chal['stopped_by'])}; best trial "
                   f"{chal['best_trial']} with {chal['rounds']} rounds. Training took {search.get('seconds_total', 0):.1f} s "
                   f"of a {search['budget_s']:g} s budget.</p>" + _svg(fig) + _table(
                       ["trial", "state", "CV AUC", "rounds", "seconds", "parameters"],
                       [[t["number"], t["state"], t["auc"] if t["auc"] is not None else "—", t["rounds"] or "—",
                         t["seconds"] if t["seconds"] is not None else "—",
                         ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())]
                        for t in trials], left=2))
    return "".join(out)


def render_report(manifest: Mapping[str, Any], linear: WoeLinear, binned: Mapping[str, BinnedFeature], y: np.ndarray,
                  parts: Mapping[str, np.ndarray], predictions: Mapping[str, Mapping[str, np.ndarray]],
                  scaling: Scaling, labels: Mapping[str, Mapping[str, str]]) -> str:
    champion = manifest["champion"]
    y_by_part = {p: y[parts[p]] for p in predictions}
    ev = manifest["evaluation"]
    rows = [[part, model, m["rows"], m["bad_rate"], m["auc"], m["ks"], m["brier"], m["mean_pd"]]
            for part, models in ev.items() for model, m in models.items()]
    sel = set(linear.names)
    iv_rows = sorted(([n, labels.get(n, {}).get("en", n), labels.get(n, {}).get("zh", n), f.kind, f.n_bins, f.iv,
                       {1: "↑ bad rate rises", -1: "↓ bad rate falls", 0: "—"}[f.trend], "yes" if n in sel else "no"]
                      for n, f in binned.items()), key=lambda r: -r[5])
    points = linear.points_table(scaling)
    parts_html = []
    for j, f in enumerate(linear.features):
        lab = labels.get(f.name, {})
        parts_html.append(f"<h3>{html.escape(lab.get('en', f.name))} / {html.escape(lab.get('zh', f.name))} "
                          f"<span class='muted'>({html.escape(f.name)}, coefficient {linear.coef[j]:.3f})</span></h3>"
                          + f"<p class='muted'>IV {f.iv:.3f}</p>" + _bins_table(f, points[j]))
    judge = "oot" if "oot" in predictions else "test" if "test" in predictions else "cv"
    score = scaling.score(logit(predictions[judge][champion]))
    sections = [
        f"<h1>Model validation report / 模型验证报告</h1><p>{html.escape(manifest['kind'])} model, target "
        f"<b>{html.escape(manifest['target'])}</b>, trained {html.escape(manifest['created_at'])} on "
        f"{manifest['training_data']['rows']:,} rows (bad rate {manifest['training_data']['bad_rate']:.2%}), data "
        f"SHA-256 <code>{manifest['training_data']['sha256']}</code>. Champion: <b>{champion}</b>. Points: "
        f"{scaling.points:g} at good:bad odds {scaling.odds:g}, {scaling.pdo:g} points to double the odds.</p>",
        "<h2>Discrimination and calibration / 区分度与校准</h2>" + _table(
            ["sample", "model", "rows", "bad rate", "AUC", "KS", "Brier", "mean PD"], rows, left=2),
        _roc(y_by_part, predictions),
        _ks_curve(y_by_part[judge], score, f"KS — {judge}, champion"),
        _calibration(y_by_part[judge], predictions[judge], judge),
        _distribution(y_by_part[judge], score, judge),
    ]
    sections.append(_search_section(manifest))
    if "oot" in predictions:
        sections.append(f"<p>Out-of-time sample: rows dated from {html.escape(str(manifest['splits'].get('oot_from')))} "
                        f"on ({manifest['splits']['oot']:,} rows), never seen in training.</p>")
    if manifest.get("dimensions"):
        sections.append("<h2>Three dimensions / 三维信用</h2>" + _table(
            ["dimension", "weight in the combined ln-odds", "features"],
            [[d, v["weight"], ", ".join(v["features"])] for d, v in manifest["dimensions"].items()]))
    sections.append("<h2>Information value / 信息值 (IV)</h2>" + _table(
        ["feature", "label (en)", "标签 (zh)", "type", "bins", "IV", "trend", "in scorecard"], iv_rows, left=4))
    if manifest.get("dropped"):
        sections.append("<p>Not used: " + html.escape("; ".join(f"{k} ({v})" for k, v in manifest["dropped"].items())) + "</p>")
    sections.append("<h2>Scorecard bins / 评分卡分箱</h2>" + "".join(parts_html))
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Validation report {html.escape(manifest['target'])}"
            f"</title><style>{CSS}</style></head><body>{''.join(sections)}</body></html>")
