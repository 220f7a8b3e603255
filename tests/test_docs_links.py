"""Every relative link in README.md and docs/ points at a file that exists, and at a heading that exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\".*\")?\s*$", re.M)
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.I)


def _strip_code(text: str) -> str:
    return INLINE_CODE.sub("", FENCE.sub("", text))


def github_anchors(text: str) -> set[str]:
    """Anchors GitHub generates for the headings of a markdown file (with -1, -2 … for repeats)."""
    anchors: set[str] = set(HTML_ANCHOR.findall(text))
    seen: dict[str, int] = {}
    for line in FENCE.sub("", text).splitlines():
        m = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))  # a link's text only
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def broken_links(path: Path) -> list[str]:
    text = path.read_text()
    body = _strip_code(text)
    targets = LINK.findall(body) + REF_DEF.findall(body)
    problems = []
    for target in targets:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto: …
            continue
        where, _, anchor = target.partition("#")
        if where.startswith("/"):
            problems.append(f"{target}: absolute path; links must be relative")
            continue
        dest = (path.parent / where).resolve() if where else path
        if not dest.exists():
            problems.append(
                f"{target}: {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest} missing"
            )
            continue
        if anchor and dest.suffix == ".md" and anchor not in github_anchors(dest.read_text()):
            problems.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    return [f"{path.relative_to(ROOT)}: {p}" for p in problems]


def test_every_relative_link_resolves() -> None:
    problems = [p for path in _markdown_files() for p in broken_links(path)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_checker_catches_bad_links(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Top\n## Devices and twins\n## Devices and twins\n")
    page = tmp_path / "b.md"
    page.write_text(
        "[ok](a.md#devices-and-twins) [ok2](a.md#devices-and-twins-1) [self](#x)\n"
        "[bad](a.md#nope) [gone](missing.md) `[code](ignored.md)`\n"
        "```\n[fenced](ignored.md)\n```\n# x\n"
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        problems = broken_links(page)
    finally:
        ROOT = saved
    assert len(problems) == 2, problems
    assert "no heading #nope" in problems[0] and "missing.md" in problems[1]


def test_anchor_slugs_follow_github() -> None:
    anchors = github_anchors(
        "# Reference: CRDs, DMI & MQTT\n## `kubeshore up`\n# Install on a real cluster\n"
    )
    assert anchors == {"reference-crds-dmi--mqtt", "kubeshore-up", "install-on-a-real-cluster"}
