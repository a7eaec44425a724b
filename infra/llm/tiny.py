"""A tiny causal LM and LoRA adapters for it, built offline in seconds.

Tests, benchmarks and examples use these to run the real backends (transformers'
``from_pretrained``, bitsandbytes quantization, peft adapters, an OpenAI-compatible
server) without downloading anything::

    path = build_tiny_model(tmp / "tiny")                        # ~1 MB, random weights
    adapter = build_tiny_adapter(path, tmp / "lora-a", seed=1)   # a peft LoRA directory

The model is a 2-layer Llama with random weights and a byte-level BPE tokenizer trained
here on a small corpus, with a chat template. Every Linear has in/out features that are
multiples of 64 (bitsandbytes 4-bit on CPU needs that). Its text is gibberish; it is for
exercising the machinery, not for quality.
"""

from __future__ import annotations

from pathlib import Path

from patchsmith.errors import MissingExtra

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
VOCAB_SIZE = 512

_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def sub(a, b):\n    return a - b\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n",
    "    def push(self, item):\n        self.items.append(item)\n",
    "    def pop(self):\n        return self.items.pop()\n",
    "for i in range(10):\n    print(i * 2)\n",
    "if x is None:\n    raise ValueError('x is required')\n",
    "import os\nimport sys\nfrom pathlib import Path\n",
    "with open(path) as f:\n    data = f.read()\n",
    "assert result == expected, f'{result} != {expected}'\n",
    "--- a/calc.py\n+++ b/calc.py\n@@ -1,3 +1,3 @@\n-    return a - b\n+    return a + b\n",
    "Fix the failing test. The function returns the wrong value for empty lists.",
    "You are a careful software engineer. Propose a minimal patch.",
    "The quick brown fox jumps over the lazy dog. 0123456789 {}[]()<>=+-*/%!?:;,.'\"",
]


def _require() -> None:
    try:
        import tokenizers  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingExtra("the tiny test model", "hf") from exc


def _build_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
        padding_side="left",
        model_max_length=512,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)


def build_tiny_model(path: Path, *, seed: int = 0) -> Path:
    """Build a random 2-layer Llama + tokenizer + chat template under ``path``; return it.

    Deterministic for a given ``seed``. Loadable with ``AutoModelForCausalLM.from_pretrained``
    and ``AutoTokenizer.from_pretrained`` with no network.
    """
    _require()
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    _build_tokenizer(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=16,
        max_position_embeddings=512,
        initializer_range=0.05,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    return path


def build_tiny_adapter(
    model_path: Path, path: Path, *, seed: int = 1, rank: int = 8, scale: float = 1.0
) -> Path:
    """Build a LoRA adapter for the tiny model under ``path`` with random, non-zero weights.

    Unlike a freshly initialised adapter (whose B matrices are zero) this one changes the
    model's logits, so tests can tell base, adapter A and adapter B apart.
    """
    _require()
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise MissingExtra("building a LoRA adapter", "hf") from exc
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        target_modules=["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3 * scale)
    peft_model.save_pretrained(str(path))
    return Path(path)
