from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
GOLDEN = REPO / "tests" / "golden"
DATA = REPO / "data"

# numpy picks its exp/log kernels by CPU (X86_V3 vs X86_V4 SIMD): the HMM posteriors it computes
# differ by a few ulps between machines (measured: at most 9 over the 20 models' goldens). The
# regime (their first argmax) and every other column must be equal; posteriors within this many
# ulps (PARITY.md: "compare them with a named tolerance and the regime (argmax) exactly").
POSTERIOR_ULPS = 16
# torch's f32 matmul kernels differ with the CPU (AVX2, AVX-512, AMX machines give logits a few
# ulps apart: PARITY.md, "logits cannot match torch bit for bit"): a golden's logits and margin are
# reproduced within LOGIT_ULPS ulps of the row's largest logit; its actions and positions exactly.
LOGIT_ULPS = 16


def posteriors_close(new: list[float], old: list[float]) -> bool:
    """Every posterior within POSTERIOR_ULPS ulps of the golden's."""
    import numpy as np

    a, b = np.asarray(new, dtype=np.float64), np.asarray(old, dtype=np.float64)
    scale = np.spacing(np.maximum(np.abs(a), np.abs(b)))
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= POSTERIOR_ULPS * scale))


def logits_close(new: list[float], old: list[float]) -> bool:
    """Every logit (and the margin) within LOGIT_ULPS f32 ulps of the row's largest logit."""
    import numpy as np

    a, b = np.asarray(new, dtype=np.float64), np.asarray(old, dtype=np.float64)
    if a.shape != b.shape:
        return False
    if a.size == 0:
        return True
    tol = LOGIT_ULPS * float(np.spacing(np.float32(max(np.max(np.abs(a)), np.max(np.abs(b))))))
    return bool(np.all(np.abs(a - b) <= tol))


def assert_golden_text_equal(new: str, old: str, label: str) -> None:
    """Golden CSV texts equal column for column; `post_*` columns within POSTERIOR_ULPS ulps,
    `logit_*` and `margin` within LOGIT_ULPS ulps of the row's largest logit."""
    a, b = new.splitlines(), old.splitlines()
    assert len(a) == len(b), f"{label}: {len(a)} rows, golden {len(b)}"
    assert a[0] == b[0], f"{label}: header differs"
    cols = a[0].split(",")
    post = [i for i, c in enumerate(cols) if c.startswith("post_")]
    logit = [i for i, c in enumerate(cols) if c.startswith("logit_") or c == "margin"]
    near = set(post) | set(logit)
    for n, (la, lb) in enumerate(zip(a[1:], b[1:], strict=True), start=2):
        if la == lb:
            continue
        fa, fb = la.split(","), lb.split(",")
        others = [(cols[i], x, y) for i, (x, y) in enumerate(zip(fa, fb, strict=True))]
        diff = [(c, x, y) for i, (c, x, y) in enumerate(others) if x != y and i not in near]
        assert not diff, f"{label} line {n}: {diff[:3]}"
        pa = [float(fa[i]) for i in post if fa[i] != ""]
        pb = [float(fb[i]) for i in post if fb[i] != ""]
        assert posteriors_close(pa, pb), f"{label} line {n}: posteriors {pa} vs golden {pb}"
        ga = [float(fa[i]) for i in logit if fa[i] != ""]
        gb = [float(fb[i]) for i in logit if fb[i] != ""]
        assert logits_close(ga, gb), f"{label} line {n}: logits {ga} vs golden {gb}"
