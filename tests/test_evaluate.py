import numpy as np
import pytest
from sklearn.metrics import f1_score

from coop.evaluate import classification_metrics, cosine_logits, macro_f1


@pytest.mark.parametrize("seed", range(5))
def test_macro_f1_equals_sklearn_over_present_labels(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, 50)
    pred = np.where(rng.random(50) < 0.5, labels, rng.integers(0, 8, 50))  # predicts absent labels too
    ref = f1_score(labels, pred, labels=np.unique(labels), average="macro", zero_division=0)
    assert macro_f1(labels, pred) == pytest.approx(ref, abs=1e-12)


def test_metrics_in_percent():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [1.0, 0.0]])
    m = classification_metrics(logits, np.array([0, 1, 1, 0]))
    assert m["accuracy"] == 75.0 and m["n_test"] == 4
    assert m["macro_f1"] == pytest.approx(100 * (0.8 + 2 / 3) / 2, abs=1e-3)


def test_cosine_logits_scale_and_invariance():
    img = np.array([[3.0, 0.0], [0.0, 0.5]])
    txt = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert np.allclose(cosine_logits(img, txt, 100.0), [[100, 0], [0, 100]])
