"""Cohort summaries for the data chapter: demographics, staging and scanner tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

DX_ORDER = ("CN", "MCI", "AD")
BRAAK_LABELS = ("0", "I", "II", "III", "IV", "V", "VI")


def _group(df: pd.DataFrame) -> pd.Series:
    if "amyloid" in df and df["amyloid"].notna().any():
        return df["diagnosis"].astype(str) + " " + df["amyloid"].fillna("?").astype(str)
    return df["diagnosis"].astype(str)


def group_order(groups: pd.Series) -> list[str]:
    """Order diagnosis (× amyloid) groups as CN, MCI, AD, A− before A+."""
    def key(g: str) -> tuple[int, str]:
        dx, _, amy = g.partition(" ")
        return (DX_ORDER.index(dx) if dx in DX_ORDER else len(DX_ORDER), "0" if amy == "A-" else amy)

    return sorted(pd.unique(groups), key=key)


def cohort_table(subjects: pd.DataFrame) -> pd.DataFrame:
    """Demographics by diagnosis × amyloid: N, age mean ± SD, % female, median Braak stage.

    Parameters
    ----------
    subjects : pandas.DataFrame
        One row per subject with ``diagnosis`` and optionally ``amyloid``, ``age``, ``sex``,
        ``braak``. Travelling-subject sessions must be dropped first (one row per subject).
    """
    df = subjects.assign(group=_group(subjects))
    rows = []
    for g in [*group_order(df["group"]), "all"]:
        sub = df if g == "all" else df[df["group"] == g]
        row: dict[str, object] = {"group": g, "N": len(sub)}
        if "age" in sub and sub["age"].notna().any():
            row["age"] = f"{sub['age'].mean():.1f} ± {sub['age'].std(ddof=1) if len(sub) > 1 else 0:.1f}"
        if "sex" in sub and sub["sex"].notna().any():
            row["female %"] = round(100 * float((sub["sex"] == "F").mean()))
        if "braak" in sub and sub["braak"].notna().any():
            row["median Braak"] = BRAAK_LABELS[int(np.median(sub["braak"]))]
        rows.append(row)
    return pd.DataFrame(rows).set_index("group")


def stage_by_diagnosis(subjects: pd.DataFrame) -> pd.DataFrame:
    """Counts of each Braak stage (0–VI, columns) per diagnosis × amyloid group (rows)."""
    df = subjects.assign(group=_group(subjects))
    tab = pd.crosstab(df["group"], df["braak"].astype(int)).reindex(columns=range(7), fill_value=0)
    tab.columns = list(BRAAK_LABELS)
    return tab.reindex(group_order(df["group"]))


def manufacturer_crosstab(subjects: pd.DataFrame) -> pd.DataFrame:
    """Scans per manufacturer (rows) × diagnosis (columns), with margins."""
    tab = pd.crosstab(subjects["manufacturer"], subjects["diagnosis"], margins=True, margins_name="all")
    cols = [c for c in (*DX_ORDER, "all") if c in tab.columns]
    return tab[cols]


def roi_by_group(subjects: pd.DataFrame, rois: tuple[str, ...], prefix: str = "pet_") -> pd.DataFrame:
    """ROI SUVR mean ± SD by diagnosis × amyloid group (the data chapter's regional table)."""
    df = subjects.assign(group=_group(subjects))
    out = {}
    for g in group_order(df["group"]):
        sub = df[df["group"] == g]
        out[f"{g} ({len(sub)})"] = {
            r: f"{sub[prefix + r].mean():.2f} ± {sub[prefix + r].std(ddof=1) if len(sub) > 1 else 0:.2f}"
            for r in rois
        }
    return pd.DataFrame(out).T


def pick_stage_examples(subjects: pd.DataFrame, k: int = 6) -> pd.DataFrame:
    """Pick ``k`` subjects spanning the disease, one row each.

    Ordered by the continuous Braak stage when the frame has it (the synthetic cohort), else by
    the Braak stage, else (real data, whose stage is unknown) by diagnosis, CN to AD.

    Examples
    --------
    >>> scans = pd.DataFrame({"subject_id": list("abcd"), "diagnosis": ["AD", "CN", "MCI", "CN"]})
    >>> list(pick_stage_examples(scans, k=3)["diagnosis"])
    ['CN', 'MCI', 'AD']
    """
    col = next((c for c in ("stage_cont", "braak") if c in subjects), None)
    if col is not None:
        ordered = subjects.sort_values(col).reset_index(drop=True)
    else:
        rank = subjects["diagnosis"].map({dx: i for i, dx in enumerate(DX_ORDER)}).fillna(len(DX_ORDER))
        ordered = subjects.assign(_rank=rank).sort_values(["_rank", "subject_id"]).drop(columns="_rank")
        ordered = ordered.reset_index(drop=True)
    idx = np.unique(np.round(np.linspace(0, len(ordered) - 1, min(k, len(ordered)))).astype(int))
    return ordered.iloc[idx]


def _scan_key(df: pd.DataFrame) -> pd.Series:
    session = df["session"].astype(object).where(df["session"].notna(), "").astype(str) if "session" in df else ""
    return df["subject_id"].astype(str) + "|" + session


def match_scans(scans: pd.DataFrame, picks: pd.DataFrame) -> pd.DataFrame:
    """Rows of the manifest ``scans`` for the subjects (and sessions) in ``picks``, in ``picks``' order."""
    indexed = scans.assign(_key=_scan_key(scans)).set_index("_key")
    return indexed.loc[_scan_key(picks).to_numpy()].reset_index(drop=True)
