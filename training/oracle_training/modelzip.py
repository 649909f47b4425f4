"""The atomic model zip ``SYM_TF.zip`` (seed section 3, contract section 9).

Members: ``SYM_TF_hmm.pkl`` (hmmlearn pickle), ``SYM_TF_ppo.zip`` (SB3 save),
``SYM_TF_policy.onnx`` (actor logits), ``SYM_TF_hmm.json`` (portable HMM parameters),
``SYM_TF_policy.weights`` (the ONNX actor's plain weights, :mod:`oracle_training.weights`, written
from the ONNX member whenever a zip is written). The zip comment is the metadata JSON.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from pathlib import Path

from oracle_training.util import atomic_write_bytes, sha256_bytes

FORMAT_VERSION = "2.0"

# The largest uncompressed member and zip file a load reads (oracle_model's MAX_MEMBER_BYTES and
# MAX_ZIP_BYTES): the declared size is checked before reading and the bytes are counted while
# reading, since a zip header can understate the size.
MAX_MEMBER_BYTES = 16 * 1024 * 1024
MAX_ZIP_BYTES = 64 * 1024 * 1024

# The symbol names IPC lines, files and the broker carry (oracle_core::stream::valid_symbol).
MAX_SYMBOL = 32
SYMBOL_RE = re.compile(rf"[A-Za-z0-9._#-]{{1,{MAX_SYMBOL}}}")

# The timeframes a model may have: the cTrader periods with a fixed length, which the executor
# streams (oracle_model's SUPPORTED_TIMEFRAMES).
TIMEFRAMES = ("M1", "M2", "M3", "M4", "M5", "M10", "M15", "M30", "H1", "H4", "H12", "D1", "W1")

SEED_FIELDS = {
    "format_version": str,
    "generated_at": str,
    "symbol": dict,
    "training_config": dict,
    "hmm_config": dict,
    "rl_config": dict,
    "actions": dict,
}
V2_FIELDS = {
    "window": int,
    "observation": dict,
    "hmm": dict,
    "policy": dict,
    "members": dict,
    "data": dict,
}
NESTED = {
    "symbol": ("name", "clean", "timeframe"),
    "training_config": (
        "point",
        "pip_value",
        "spread_points",
        "slippage_points",
        "commission_per_lot",
        "digits",
        "lot_sizes",
    ),
    "hmm_config": ("n_states", "momentum_period", "consistency_period", "range_period"),
    "rl_config": ("roc_period", "atr_period", "ema_period", "range_period", "volume_ma_period"),
    "observation": ("dim", "layout", "rl_norm", "clip"),
    "hmm": ("covariance_type", "n_states", "n_features", "feature_norm"),
    "policy": ("obs_dim", "n_actions", "net_arch", "activation"),
}


class ModelZipError(ValueError):
    """A model zip that must be refused; the message names the zip and the field or member."""


# The runtime fields a seed-format zip (seed section 3) has none of.
RUNTIME_FIELDS = ("window", "observation", "hmm", "policy", "members")


def pack_command(file: str) -> str:
    """The command that packs a seed-format zip into a runtime zip, in its place (the same text
    as the Rust loader's ``oracle_model::pack_command``)."""
    return f"python -m oracle_training pack --from {file} --bars TRAINING_BARS.csv"


def seed_format_error(meta, names, where: str) -> ModelZipError | None:
    """The refusal of a seed-format zip (no runtime field, a seed member), naming ``pack``."""
    if not isinstance(meta, dict) or any(f in meta for f in RUNTIME_FIELDS):
        return None
    seed = sorted(n for n in names if n.endswith("_ppo.zip") or n.endswith("_hmm.pkl"))
    if not seed:
        return None
    return ModelZipError(
        f"{where}: a seed-format model zip ({', '.join(seed)}, no runtime members or runtime "
        f"metadata): pack it into a runtime zip, in its place, with `{pack_command(where)}` "
        "(training/README.md)"
    )


def check_features(meta: dict, where: str) -> None:
    """``observation.layout`` and, when present, the ``features`` declaration against the one
    feature set the twin implements (contract section 9; the Rust loader's same rules). No
    declaration means the v1 set."""
    from oracle_training.features import (
        FEATURE_SET,
        FEATURE_SET_VERSION,
        HMM_FEATURES,
        MARKET_FEATURES,
        MARKET_PERIODS,
        observation_layout,
    )

    want_layout = observation_layout(int(meta["hmm"]["n_states"]))
    layout = meta["observation"]["layout"]
    if not isinstance(layout, list):
        raise ModelZipError(f"{where}: metadata field 'observation.layout' must be a list")
    if len(layout) != len(want_layout):
        raise ModelZipError(
            f"{where}: shape mismatch in 'observation.layout': expected {len(want_layout)} "
            f"names, found {len(layout)} names"
        )
    unknown = [
        f"observation.layout[{i}] {json.dumps(n)}"
        for i, n in enumerate(layout)
        if n not in want_layout
    ]
    decl = meta.get("features")
    if decl is not None:
        if not isinstance(decl, dict):
            raise ModelZipError(f"{where}: metadata field 'features' must be dict")
        if decl.get("set") != FEATURE_SET:
            raise ModelZipError(
                f"{where}: metadata field 'features.set' is invalid: {decl.get('set')!r} is not "
                f"a feature set this loader implements ({FEATURE_SET!r})"
            )
        if decl.get("version") != FEATURE_SET_VERSION:
            raise ModelZipError(
                f"{where}: metadata field 'features.version' is invalid: {decl.get('version')!r} "
                f"is not a version of feature set {FEATURE_SET!r} this loader implements "
                f"({FEATURE_SET_VERSION})"
            )
        groups = (
            ("market", MARKET_FEATURES, lambda n: f"rl_config.{MARKET_PERIODS[n]}_period"),
            ("hmm", HMM_FEATURES, lambda n: f"hmm_config.{n}_period"),
        )
        for group, names, config in groups:
            declared = decl.get(group)
            if not isinstance(declared, list):
                raise ModelZipError(f"{where}: metadata field 'features.{group}' must be list")
            seen = []
            for i, f in enumerate(declared):
                name, period = (f.get("name"), f.get("period")) if isinstance(f, dict) else (0, 0)
                if not isinstance(name, str) or not isinstance(period, int):
                    raise ModelZipError(
                        f"{where}: metadata field 'features.{group}.{i}' must be "
                        '{"name": str, "period": int}'
                    )
                if name not in names:
                    unknown.append(f"{group} {name}({period})")
                    continue
                field = config(name)
                section, key = field.split(".")
                if meta[section][key] != period:
                    raise ModelZipError(
                        f"{where}: shape mismatch in 'features.{group}.{i} ({name}) period': "
                        f"expected {field} = {meta[section][key]}, found {period}"
                    )
                seen.append(name)
            if not unknown and seen != list(names):
                raise ModelZipError(
                    f"{where}: metadata field 'features.{group}' is invalid: declares "
                    f"[{', '.join(seen)}]; the set's {group} features are [{', '.join(names)}], "
                    "each once, in this order"
                )
    if unknown:
        raise ModelZipError(
            f"{where}: the metadata declares features this loader does not implement: "
            f"{', '.join(unknown)} (it implements feature set {FEATURE_SET} "
            f"v{FEATURE_SET_VERSION}: market {', '.join(MARKET_FEATURES)}; hmm "
            f"{', '.join(HMM_FEATURES)}; docs/contract.md §3-5)"
        )
    for i, (found, want) in enumerate(zip(layout, want_layout, strict=False)):
        if found != want:
            raise ModelZipError(
                f"{where}: metadata field 'observation.layout' is invalid: entry {i} is "
                f"{json.dumps(found)}, the contract's observation has {json.dumps(want)} there"
            )


def member_names(name: str) -> dict[str, str]:
    return {
        "hmm_pkl": f"{name}_hmm.pkl",
        "ppo": f"{name}_ppo.zip",
        "onnx": f"{name}_policy.onnx",
        "hmm_json": f"{name}_hmm.json",
        "weights": f"{name}_policy.weights",
    }


def dumps_json(obj) -> str:
    """JSON with shortest round-trip floats (Python's repr), stable key order as given."""
    return json.dumps(obj, indent=None, separators=(",", ":"), allow_nan=False)


def write_model_zip(path: str | Path, meta: dict, members: dict[str, bytes]) -> dict:
    """Write the zip atomically. The plain weights member is (re)written from the ONNX member,
    and ``meta['members']`` is (re)filled with each member's sha256. Returns the metadata
    written."""
    from oracle_training.weights import weights_member

    meta = dict(meta)
    names = member_names(f"{meta['symbol']['name']}_{meta['symbol']['timeframe']}")
    if names["onnx"] in members:
        members = dict(members)
        members[names["weights"]] = weights_member(
            members[names["onnx"]], f"{Path(path).name}: member '{names['onnx']}'"
        )
    if "features" not in meta:
        from oracle_training.features import HMMConfig, RLConfig, declaration

        meta["features"] = declaration(
            RLConfig(**meta["rl_config"]), HMMConfig(**meta["hmm_config"])
        )
    meta["members"] = {fn: {"sha256": sha256_bytes(data)} for fn, data in members.items()}
    validate_metadata(meta, Path(path).name, members=set(members))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for fn, data in members.items():
            info = zipfile.ZipInfo(fn, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
        zf.comment = dumps_json(meta).encode("utf-8")
    atomic_write_bytes(path, buf.getvalue())
    return meta


def validate_metadata(meta: dict, where: str = "model", members: set | None = None) -> None:
    if not isinstance(meta, dict):
        raise ModelZipError(f"{where}: metadata is not a JSON object")
    for fields in (SEED_FIELDS, V2_FIELDS):
        for key, typ in fields.items():
            if key not in meta:
                raise ModelZipError(f"{where}: metadata field '{key}' is missing")
            if not isinstance(meta[key], typ) or isinstance(meta[key], bool):
                raise ModelZipError(
                    f"{where}: metadata field '{key}' must be {typ.__name__}, "
                    f"got {type(meta[key]).__name__}"
                )
    if meta["format_version"] != FORMAT_VERSION:
        raise ModelZipError(
            f"{where}: metadata field 'format_version' is {meta['format_version']!r}, "
            f"expected {FORMAT_VERSION!r}"
        )
    for key, subs in NESTED.items():
        for sub in subs:
            if sub not in meta[key]:
                raise ModelZipError(f"{where}: metadata field '{key}.{sub}' is missing")
    for sub in ("mean", "std"):
        if sub not in meta["observation"]["rl_norm"]:
            raise ModelZipError(f"{where}: metadata field 'observation.rl_norm.{sub}' is missing")
        if sub not in meta["hmm"]["feature_norm"]:
            raise ModelZipError(f"{where}: metadata field 'hmm.feature_norm.{sub}' is missing")
    tf = meta["symbol"]["timeframe"]
    if tf not in TIMEFRAMES:
        raise ModelZipError(
            f"{where}: metadata field 'symbol.timeframe' is invalid: {tf!r} is not a timeframe "
            f"the system streams ({', '.join(TIMEFRAMES)})"
        )
    symbol = meta["symbol"]["name"]
    if not isinstance(symbol, str) or not SYMBOL_RE.fullmatch(symbol):
        raise ModelZipError(
            f"{where}: metadata field 'symbol.name' is invalid: {symbol!r} cannot name a model: "
            f"a symbol is 1 to {MAX_SYMBOL} characters of A-Z a-z 0-9 . _ - #"
        )
    name = f"{meta['symbol']['name']}_{meta['symbol']['timeframe']}"
    want = set(member_names(name).values())
    have = set(meta["members"])
    weights = member_names(name)["weights"]
    if weights not in have and not (want - {weights}) - have:
        from oracle_training.weights import pack_weights_command

        raise ModelZipError(
            f"{where}: lacks the plain policy weights member '{weights}' (the ONNX policy is "
            f"imported when a model is packed, not at load): add it with "
            f"`{pack_weights_command(where)}`"
        )
    for fn in sorted(want - have):
        raise ModelZipError(f"{where}: metadata field 'members' lacks member '{fn}'")
    for fn, info in meta["members"].items():
        if not isinstance(info, dict) or "sha256" not in info:
            raise ModelZipError(f"{where}: metadata field 'members.{fn}.sha256' is missing")
    if members is not None:
        for fn in sorted(want - set(members)):
            raise ModelZipError(f"{where}: member '{fn}' is missing from the zip")
    if len(meta["actions"]) != 7:
        raise ModelZipError(f"{where}: metadata field 'actions' must have 7 entries")
    if meta["observation"]["dim"] != 5 + meta["hmm"]["n_states"] + 3:
        raise ModelZipError(f"{where}: metadata field 'observation.dim' != 5 + n_states + 3")
    check_features(meta, where)


def _read_member(zf: zipfile.ZipFile, fn: str, where: str, cap: int) -> bytes:
    """A member's bytes, refused once its declared size or the bytes read pass ``cap``."""
    too_large = ModelZipError(
        f"{where}: member '{fn}' is larger than the {cap}-byte cap on a member; not read"
    )
    if zf.getinfo(fn).file_size > cap:
        raise too_large
    chunks, total = [], 0
    try:
        with zf.open(fn) as f:
            while chunk := f.read(64 * 1024):
                total += len(chunk)
                if total > cap:
                    raise too_large
                chunks.append(chunk)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise ModelZipError(f"{where}: member '{fn}' cannot be read: {e}") from e
    return b"".join(chunks)


class ModelZip:
    """A loaded, validated model zip: metadata and member bytes (sha256 checked). The file name
    must be ``<symbol.name>_<timeframe>.zip`` as the metadata says."""

    def __init__(
        self,
        path: str | Path,
        max_member_bytes: int = MAX_MEMBER_BYTES,
        max_zip_bytes: int = MAX_ZIP_BYTES,
    ):
        self.path = Path(path)
        where = self.path.name
        try:
            size = self.path.stat().st_size
        except OSError as e:
            raise ModelZipError(f"{where}: cannot read the file ({e})") from e
        if size > max_zip_bytes:
            raise ModelZipError(
                f"{where}: the file is {size} bytes, more than the {max_zip_bytes}-byte cap "
                "on a model zip"
            )
        try:
            zf = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as e:
            raise ModelZipError(f"{where}: not a readable zip ({e})") from e
        with zf:
            try:
                meta = json.loads(zf.comment.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ModelZipError(f"{where}: the zip comment is not metadata JSON ({e})") from e
            names = set(zf.namelist())
            seed = seed_format_error(meta, names, where)
            if seed is not None:
                raise seed
            validate_metadata(meta, where, members=names)
            self.members = {}
            for fn, info in meta["members"].items():
                if fn not in names:
                    raise ModelZipError(f"{where}: member '{fn}' is missing from the zip")
                data = _read_member(zf, fn, where, max_member_bytes)
                if sha256_bytes(data) != info["sha256"]:
                    raise ModelZipError(
                        f"{where}: member '{fn}' sha256 mismatch "
                        f"(metadata {info['sha256'][:12]}…, file {sha256_bytes(data)[:12]}…)"
                    )
                self.members[fn] = data
        from oracle_training.weights import WeightsError, check_weights

        names = member_names(f"{meta['symbol']['name']}_{meta['symbol']['timeframe']}")
        try:
            check_weights(
                meta,
                self.members[names["weights"]],
                meta["members"][names["onnx"]]["sha256"],
                names["weights"],
                where,
            )
        except WeightsError as e:
            raise ModelZipError(str(e)) from None
        self.meta = meta
        self.name = f"{meta['symbol']['name']}_{meta['symbol']['timeframe']}"
        self.names = member_names(self.name)
        if where != f"{self.name}.zip":
            raise ModelZipError(
                f"{where}: the file name must be '{self.name}.zip': its metadata says "
                f"symbol.name {meta['symbol']['name']!r}, symbol.timeframe "
                f"{meta['symbol']['timeframe']!r}"
            )

    def member(self, key: str) -> bytes:
        return self.members[self.names[key]]

    def hmm_dict(self) -> dict:
        return json.loads(self.member("hmm_json"))

    def spec(self):
        from oracle_training.spec import TwinSpec

        return TwinSpec.from_metadata(self.meta, self.hmm_dict())

    def load_ppo(self):
        import torch
        from stable_baselines3 import PPO

        torch.set_num_threads(1)
        return PPO.load(io.BytesIO(self.member("ppo")), device="cpu")

    def load_hmm_pickle(self):
        import pickle

        return pickle.loads(self.member("hmm_pkl"))
