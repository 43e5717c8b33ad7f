"""Run configuration: frozen dataclasses loaded from ``configs/*.toml`` with dotted overrides.

One flat base (the dataclass defaults) plus small TOML files that override it, as in MaxText.
``load_config("configs/tiny.toml", ["model.n_layers=4"])`` returns a validated, read-only
``Config``. Every mistake (missing file, bad TOML, unknown key, wrong type, impossible value)
raises ``UserError`` with one line that says what to fix. This module never imports jax.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import typing
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from pogo_jax.errors import UserError
from pogo_jax.spec.rules import ChainRules, ratio

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass(frozen=True)
class ModelConfig:
    """GPT-style decoder. Parameters are always float32 (the committed master copy). ``vocab_size`` comes
    from the dataset (``resolve_vocab``): 256 (the default) is the byte vocabulary, and on a tokenized dataset
    means "the dataset's, padded to a multiple of 128"; any other value must equal that."""

    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 512
    seq_len: int = 128
    tie_embeddings: bool = True
    compute_dtype: str = "float32"  # "float32" or "bfloat16" (activations/matmuls only)
    attention_impl: str = "auto"  # jax.nn.dot_product_attention implementation: auto|xla|cudnn
    remat: bool = False  # rematerialize each block in the backward pass (saves memory on big models)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def _axes(v: Any) -> tuple[str, ...]:
    return tuple(v) if isinstance(v, list | tuple) else ((v,) if v else ())


DEFAULT_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("batch", ("data", "fsdp")), ("embed", ("fsdp",)), ("vocab", ("tensor",)), ("heads", ("tensor",)),
    ("qkv", ()), ("head_dim", ()), ("mlp", ("tensor",)), ("norm", ()), ("length", ()),
)


@dataclass(frozen=True)
class MeshConfig:
    """Device mesh and the one place where logical axis names meet mesh axes.

    Sizes of -1 mean "all remaining devices". ``rules`` maps each logical axis name used by the
    model to the mesh axes it is split over (none = replicated); in TOML a table such as
    ``rules = { embed = "fsdp", mlp = ["tensor"], norm = "" }``. Stored as a sorted tuple of pairs so
    the frozen config really cannot change; ``rule_map()`` gives the dict.
    """

    data: int = -1
    fsdp: int = 1
    tensor: int = 1
    rules: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_RULES

    def __post_init__(self) -> None:
        rules = self.rules.items() if isinstance(self.rules, dict) else self.rules
        object.__setattr__(self, "rules", tuple(sorted((str(k), _axes(v)) for k, v in rules)))

    def rule_map(self) -> dict[str, tuple[str, ...]]:
        return dict(self.rules)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup + cosine decay, global-norm clipping, gradient accumulation."""

    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.1
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-8
    clip_norm: float = 1.0
    grad_accum: int = 1


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 200
    batch_size: int = 16  # global batch (sequences per optimizer step, before accumulation split)
    seed: int = 0
    log_every: int = 10
    eval_every: int = 50
    eval_batches: int = 4
    checkpoint_every: int = 50
    keep_checkpoints: int = 3


@dataclass(frozen=True)
class DataConfig:
    """Dataset: "" means the embedded default (the interpreter's standard-library sources)."""

    path: str = ""
    shard_size: int = 65536  # bytes per data_root leaf (PROTOCOL section 6)
    eval_fraction: float = 0.05  # tail of the byte stream reserved for eval/challenge windows


@dataclass(frozen=True)
class MinerConfig:
    """One miner's own choices (PROTOCOL 3: how codes are chosen is the miner's business); nothing here
    is a chain rule, so two miners of one chain may differ."""

    bits: int = 4  # wire format is 4-bit; 2 and 8 exist only for the quality ablation
    block_steps: int = 50  # optimizer steps per block
    quant_mode: str = "block"  # "block": quantize the block's net delta; "step": every step too
    error_feedback: bool = True
    # Before submitting, the miner estimates its block's improvement on windows of its own choosing and,
    # while it is under self_check_margin x delta (up to max_tries), either extends the block by another
    # block_steps ("extend": the block grows as the loss flattens) or trains a new block from the tip
    # ("retrain"): a block under delta is slashed, honest or not. 0 windows: submit whatever it gives.
    self_check_windows: int = 16
    self_check_margin: float = 2.0
    max_tries: int = 3
    short_block: str = "extend"


@dataclass(frozen=True)
class DemoConfig:
    """``pogo demo``'s local chain: how many verifiers (and of them full-tier), their stake, blocks."""

    verifiers: int = 3
    full: int = 2
    stake: int = 1000
    blocks: int = 3
    sealed_shards: int = 32  # evaluation shards governance seals for a new demo chain: one per round


@dataclass(frozen=True)
class Config:
    name: str = "default"
    model: ModelConfig = field(default_factory=ModelConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    chain: ChainRules = field(default_factory=ChainRules)
    miner: MinerConfig = field(default_factory=MinerConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (fractions as strings, mesh rules as a table)."""
        out = dataclasses.asdict(self)
        out["chain"] = self.chain.to_obj()
        out["mesh"]["rules"] = {k: list(v) for k, v in self.mesh.rules}
        return out

    def config_hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of the whole config except where the data file lies (a dataset
        is identified by its root, not its local path); goes into block headers."""
        d = self.to_dict()
        d["data"] = {k: v for k, v in d["data"].items() if k != "path"}
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def model_hash(self) -> str:
        """Hash of the model section only: a checkpoint from another architecture is refused."""
        blob = json.dumps(dataclasses.asdict(self.model), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


_SECTIONS = {f.name: f for f in dataclasses.fields(Config)}
BYTE_VOCAB = 256
VOCAB_MULTIPLE = 128


def padded_vocab(n_ids: int) -> int:
    """The model's vocabulary for a tokenizer of ``n_ids`` ids: the next multiple of 128 (matmul-friendly)."""
    return -(-n_ids // VOCAB_MULTIPLE) * VOCAB_MULTIPLE


def resolve_vocab(cfg: Config, n_ids: int, tokenized: bool) -> tuple[Config, str]:
    """``cfg`` with the model's vocab_size taken from its dataset (``n_ids`` ids; ``tokenized`` false for a byte
    dataset) and a line saying so. A byte dataset keeps the config's value (256, or a larger one such as
    gpt2-124m's benchmark shape); on a tokenized dataset the byte default 256 becomes the padded vocabulary
    and any other value that is not it is an error."""
    v = cfg.model.vocab_size
    if not tokenized:
        if n_ids > v:
            raise UserError(f"model.vocab_size {v} is below the dataset's {n_ids} token ids")
        return cfg, f"vocab_size {v} (byte dataset: 256 ids)"
    want = padded_vocab(n_ids)
    if v not in (BYTE_VOCAB, want):
        raise UserError(f"model.vocab_size = {v} disagrees with the dataset's tokenizer ({n_ids} ids, padded to "
                        f"{want}): set model.vocab_size={want} or leave it out")
    new = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, vocab_size=want))
    return new, f"vocab_size {want} from the dataset ({n_ids} ids padded to a multiple of {VOCAB_MULTIPLE})"


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Check/convert one value against a dataclass field type; raise UserError on mismatch."""
    origin = typing.get_origin(typ)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif typ is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str:
        if isinstance(value, str):
            return value
    elif typ is Fraction:
        return ratio(value, where)
    elif typ == tuple[tuple[str, tuple[str, ...]], ...]:
        if isinstance(value, dict):
            return value
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                return parsed
    elif origin is dict or typ is dict:
        if isinstance(value, dict):
            return dict(value)
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                return parsed
    else:  # pragma: no cover - only the types above are used
        return value
    tname = getattr(typ, "__name__", str(typ))
    raise UserError(f"config key '{where}' needs a {tname}, got {value!r}")


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UserError(
            f"unknown config key '{prefix}{unknown[0]}' (known in [{prefix.rstrip('.') or 'top'}]: "
            f"{', '.join(sorted(names))})"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in values.items()}
    return cls(**kwargs)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "rules":
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def resolve_config_path(path: str | Path) -> Path:
    """Accept ``configs/tiny.toml``, ``tiny.toml`` or ``tiny``; refuse what does not exist."""
    p = Path(path)
    candidates = [p, CONFIG_DIR / p, CONFIG_DIR / f"{p}.toml"]
    for c in candidates:
        if c.is_file():
            return c
    known = ", ".join(sorted(x.stem for x in CONFIG_DIR.glob("*.toml"))) if CONFIG_DIR.is_dir() else ""
    raise UserError(f"config file '{path}' not found (built-in configs: {known})")


def parse_overrides(overrides: list[str] | None) -> dict[str, Any]:
    """``["model.n_layers=4", "pogo.k_leaves=64"]`` -> nested dict of raw string values."""
    tree: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise UserError(f"override '{item}' must look like section.key=value (e.g. model.n_layers=4)")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) == 1 and parts[0] == "name":
            tree["name"] = value
            continue
        if len(parts) < 2 or parts[0] not in _SECTIONS or parts[0] == "name":
            raise UserError(
                f"unknown override key '{key}' (sections: {', '.join(k for k in _SECTIONS if k != 'name')})"
            )
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


def config_from_dict(raw: dict[str, Any]) -> Config:
    """Build and validate a Config from a nested dict (TOML tables or JSON metadata)."""
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise UserError(f"unknown config section '{unknown[0]}' (known: {', '.join(_SECTIONS)})")
    kwargs: dict[str, Any] = {}
    for name in _SECTIONS:
        if name not in raw:
            continue
        if name == "name":
            kwargs["name"] = _coerce(raw["name"], str, "name")
            continue
        if not isinstance(raw[name], dict):
            raise UserError(f"config section [{name}] must be a table")
        cls = typing.get_type_hints(Config)[name]
        kwargs[name] = _build(cls, raw[name], f"{name}.")
    cfg = Config(**kwargs)
    validate(cfg)
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Load a TOML config, apply ``section.key=value`` overrides, validate, freeze."""
    p = resolve_config_path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"config file '{p}' is not valid TOML: {e}") from None
    except OSError as e:
        raise UserError(f"cannot read config file '{p}': {e.strerror}") from None
    raw.setdefault("name", p.stem)
    return config_from_dict(_merge(raw, parse_overrides(overrides)))


def validate(cfg: Config) -> None:
    """Reject impossible combinations with a message that says how to fix them."""
    m, p, t, o = cfg.model, cfg.miner, cfg.train, cfg.optim
    checks = [
        (m.d_model % m.n_heads == 0, f"model.d_model ({m.d_model}) must be divisible by model.n_heads"),
        (m.vocab_size >= 256, "model.vocab_size must be at least 256 (byte-level tokens)"),
        (min(m.d_model, m.n_layers, m.n_heads, m.d_ff, m.seq_len) > 0, "model dimensions must be positive"),
        (m.compute_dtype in ("float32", "bfloat16"), "model.compute_dtype must be float32 or bfloat16"),
        (m.attention_impl in ("auto", "xla", "cudnn"), "model.attention_impl must be auto, xla or cudnn"),
        (p.bits in (2, 4, 8), "miner.bits must be 2, 4 or 8 (the wire format is 4)"),
        (p.quant_mode in ("block", "step"), "miner.quant_mode must be 'block' or 'step'"),
        (p.block_steps > 0, "miner.block_steps must be positive"),
        (p.self_check_windows >= 0, "miner.self_check_windows must be >= 0 (0 turns the self-check off)"),
        (p.self_check_margin >= 0, "miner.self_check_margin must be >= 0"),
        (p.max_tries >= 1, "miner.max_tries must be >= 1"),
        (p.short_block in ("extend", "retrain"), "miner.short_block must be 'extend' or 'retrain'"),
        (cfg.demo.verifiers >= 1 and 0 <= cfg.demo.full <= cfg.demo.verifiers,
         "demo.verifiers must be >= 1 and demo.full in [0, demo.verifiers]"),
        (cfg.demo.stake > 0 and cfg.demo.blocks >= 0, "demo.stake must be > 0 and demo.blocks >= 0"),
        (t.steps >= 0 and t.batch_size > 0, "train.steps must be >= 0 and train.batch_size > 0"),
        (o.grad_accum >= 1 and t.batch_size % o.grad_accum == 0,
         "train.batch_size must be a multiple of optim.grad_accum"),
        (cfg.data.shard_size > 0 and 0.0 < cfg.data.eval_fraction < 1.0,
         "data.shard_size must be positive and data.eval_fraction in (0, 1)"),
    ]
    for ok, msg in checks:
        if not ok:
            raise UserError(msg)
