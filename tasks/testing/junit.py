"""Parse pytest's JUnit XML (``junit_family=xunit1``) into outcomes keyed by pytest node ids.

xunit1 gives each ``<testcase>`` a ``file`` attribute (relative to pytest's rootdir), a
dotted ``classname`` (module path, then classes) and a ``name`` (function + parameters).
Node ids are rebuilt as ``file::Class::name``. A collection error (e.g. an ImportError in a
test module) is a testcase with an empty classname: it is keyed by the file, so it shows up
as an ``error`` instead of vanishing. A test our plugin stopped at its per-test limit
(``patchsmith_guard``) carries :data:`TIMEOUT_MARKER` in its failure and becomes ``timeout``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import PurePosixPath

from patchsmith.domain import FAILING, TestOutcome

TIMEOUT_MARKER = "patchsmith-guard: test timed out"
"""In the failure text of a test past its per-test limit (``patchsmith_guard.MARKER``)."""

# When one node id appears more than once (a call failure plus a teardown error, or a
# rerun plugin), the worst outcome wins.
_SEVERITY = {
    TestOutcome.passed: 0,
    TestOutcome.skipped: 1,
    TestOutcome.error: 2,
    TestOutcome.failed: 3,
    TestOutcome.timeout: 4,
}


@dataclass(frozen=True)
class JunitCase:
    """One testcase of a JUnit report: its node id, outcome and failure/error text."""

    nodeid: str
    outcome: TestOutcome
    text: str = ""


def _nodeid(file: str, classname: str, name: str) -> str:
    """Rebuild a pytest node id from xunit1 attributes."""
    if not file:
        # No file attribute (xunit2 or another tool): best effort from the dotted classname.
        parts = [p for p in classname.split(".") if p]
        return "::".join([*parts, name]) if parts else name
    file = PurePosixPath(file.replace("\\", "/")).as_posix()
    if not classname:
        return file  # collection error of a whole module
    parts = classname.split(".")
    stem = PurePosixPath(file).stem
    module = file.removesuffix(".py").replace("/", ".")
    if classname == module or classname.startswith(module + "."):
        classes = classname[len(module) :].lstrip(".").split(".")
    elif stem in parts:
        # classname relative to another base (rootdir vs. file path): classes follow the stem
        idx = len(parts) - 1 - parts[::-1].index(stem)
        classes = parts[idx + 1 :]
    else:
        classes = []
    return "::".join([file, *[c for c in classes if c], name])


def _case(elem: ET.Element) -> JunitCase:
    nodeid = _nodeid(elem.get("file", ""), elem.get("classname", ""), elem.get("name", ""))
    outcome = TestOutcome.passed
    texts: list[str] = []
    for child in elem:
        if child.tag == "failure":
            if outcome != TestOutcome.timeout:
                outcome = TestOutcome.failed
        elif child.tag == "error":
            if outcome not in (TestOutcome.failed, TestOutcome.timeout):
                outcome = TestOutcome.error
        elif child.tag == "skipped":
            if outcome == TestOutcome.passed:
                outcome = TestOutcome.skipped
            continue
        else:
            continue
        texts.append(child.text or child.get("message") or "")
        if TIMEOUT_MARKER in (child.get("message") or "") + (child.text or ""):
            outcome = TestOutcome.timeout
    return JunitCase(nodeid=nodeid, outcome=outcome, text="\n".join(texts))


def parse_junit_cases(xml_text: str) -> list[JunitCase]:
    """Every testcase in the report, in document order; [] for empty or garbled XML."""
    if not xml_text.strip():
        return []
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError:
        return []
    return [_case(elem) for elem in root.iter("testcase")]


def parse_junit(xml_text: str) -> dict[str, TestOutcome]:
    """Outcome per node id; {} for empty or garbled XML (the caller falls back on exit code)."""
    outcomes: dict[str, TestOutcome] = {}
    for case in parse_junit_cases(xml_text):
        old = outcomes.get(case.nodeid)
        if old is None or _SEVERITY[case.outcome] > _SEVERITY[old]:
            outcomes[case.nodeid] = case.outcome
    return outcomes


def parse_progress(text: str) -> dict[str, TestOutcome]:
    """Outcomes from our plugin's ``progress`` file (``outcome<TAB>nodeid`` lines): what
    finished before a run was killed. Unknown lines are ignored; the worst outcome wins."""
    outcomes: dict[str, TestOutcome] = {}
    for line in text.splitlines():
        word, _, nodeid = line.partition("\t")
        if not nodeid or word not in TestOutcome.__members__:
            continue
        outcome, old = TestOutcome(word), outcomes.get(nodeid)
        if old is None or _SEVERITY[outcome] > _SEVERITY[old]:
            outcomes[nodeid] = outcome
    return outcomes


def failure_texts(xml_text: str) -> dict[str, str]:
    """Failure/error text (pytest's traceback) per failing node id."""
    texts: dict[str, str] = {}
    for case in parse_junit_cases(xml_text):
        if case.outcome in FAILING and case.text:
            texts[case.nodeid] = "\n".join(filter(None, [texts.get(case.nodeid), case.text]))
    return texts
