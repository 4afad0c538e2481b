"""Plots for `mmbot simulate deal --out DIR`: the distribution of each strategy's PnL per price model,
and the deal's mean PnL by source against the neutral book's (the issue's "table and plots").

`deal_pnl.png`: per model, each strategy's PnL per path as a histogram on one axis (the same paths);
`deal_by_source.png`: mean PnL by source for `deal` and `hedge_no_sale`; `deal.md`: the text table.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

STRATEGY_LABELS = {
    "deal": "deal: sell now, perp hedges the rest",
    "hold_unhedged": "hold the tokens, unhedged",
    "hedge_no_sale": "hedge to zero, no sale",
}


def write_plots(
    out_dir: Path,
    totals: Mapping[str, Mapping[str, NDArray[np.float64]]],
    payload: Mapping[str, Any],
    report_text: str,
) -> list[Path]:
    """`totals[model][strategy]`: PnL per path (quote). Returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    models = list(totals)
    fig, axes = plt.subplots(len(models), 1, figsize=(8, 3.2 * len(models)), squeeze=False)
    for ax, model in zip(axes[:, 0], models, strict=True):
        series = totals[model]
        lo = min(float(np.percentile(v, 1)) for v in series.values())
        hi = max(float(np.percentile(v, 99)) for v in series.values())
        bins = np.linspace(lo, hi, 60) / 1e6
        for name, values in series.items():
            mean = float(np.mean(values))
            ax.hist(
                values / 1e6,
                bins=bins,
                alpha=0.45,
                label=f"{STRATEGY_LABELS.get(name, name)} (mean {mean / 1e6:+.2f}M)",
            )
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_title(f"{model}: PnL per path at the loan's end ({len(next(iter(series.values())))} paths)")
        ax.set_xlabel("PnL, million quote (1st-99th percentile shown)")
        ax.set_ylabel("paths")
        ax.legend(fontsize=7)
    fig.tight_layout()
    pnl_png = out_dir / "deal_pnl.png"
    fig.savefig(pnl_png, dpi=110)
    plt.close(fig)

    sources = list(payload["deal"]["by_source"])
    deal_src = [payload["deal"]["by_source"][s] / 1e3 for s in sources]
    neutral_src = [payload["hedge_no_sale"]["by_source"][s] / 1e3 for s in sources]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    y = np.arange(len(sources))
    ax.barh(y - 0.2, deal_src, height=0.4, label="deal")
    ax.barh(y + 0.2, neutral_src, height=0.4, label="hedge_no_sale")
    ax.set_yticks(y, sources)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xlabel("mean PnL, thousand quote (all models' paths)")
    ax.set_title("PnL by source")
    ax.legend()
    fig.tight_layout()
    src_png = out_dir / "deal_by_source.png"
    fig.savefig(src_png, dpi=110)
    plt.close(fig)

    table = out_dir / "deal.md"
    table.write_text(
        "```\n" + report_text + "\n```\n\n![PnL per path](deal_pnl.png)\n\n![by source](deal_by_source.png)\n"
    )
    return [pnl_png, src_png, table]
