from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
GOLDEN = REPO / "tests" / "golden"
DATA = REPO / "data"
