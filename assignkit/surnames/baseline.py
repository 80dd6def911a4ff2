"""A multinomial Naive Bayes baseline over letter 1-3-grams (pure numpy, deterministic).

Each name is lower-cased and padded with ``^`` and ``$`` so that n-grams can
mark the start and end of the name; every 1-, 2- and 3-gram is one token.  Class
priors are the training frequencies; token probabilities use add-one (Laplace)
smoothing over the training vocabulary; n-grams never seen in training are
ignored at prediction time.  Ties go to the lowest class index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NGRAM_SIZES = (1, 2, 3)


def ngrams(name: str, sizes: Sequence[int] = NGRAM_SIZES) -> list[str]:
    """All letter n-grams of the padded, lower-cased ``name`` for the given sizes."""
    padded = f"^{name.lower()}$"
    return [padded[i : i + n] for n in sizes for i in range(len(padded) - n + 1)]


@dataclass
class NaiveBayes:
    """A fitted model: class order, n-gram sizes and vocabulary, and log-probability tables."""

    classes: list[str]
    sizes: tuple[int, ...]
    vocabulary: dict[str, int]
    log_prior: np.ndarray
    log_likelihood: np.ndarray

    def predict(self, names: Sequence[str]) -> list[str]:
        """Most probable class of each name."""
        predicted = []
        for name in names:
            columns = [self.vocabulary[g] for g in ngrams(name, self.sizes) if g in self.vocabulary]
            scores = self.log_prior + self.log_likelihood[:, columns].sum(axis=1)
            predicted.append(self.classes[int(np.argmax(scores))])
        return predicted


def fit(names: Sequence[str], labels: Sequence[str], classes: Sequence[str],
        sizes: Sequence[int] = NGRAM_SIZES) -> NaiveBayes:
    """Fit the multinomial Naive Bayes model on (name, label) pairs, with letter n-grams of ``sizes``."""
    vocabulary = {gram: index for index, gram in enumerate(sorted({g for name in names for g in ngrams(name, sizes)}))}
    class_index = {label: index for index, label in enumerate(classes)}
    counts = np.zeros((len(classes), len(vocabulary)), dtype=np.float64)
    docs = np.zeros(len(classes), dtype=np.float64)
    for name, label in zip(names, labels, strict=True):
        row = class_index[label]
        docs[row] += 1.0
        for gram in ngrams(name, sizes):
            counts[row, vocabulary[gram]] += 1.0
    smoothed = counts + 1.0
    log_likelihood = np.log(smoothed) - np.log(smoothed.sum(axis=1, keepdims=True))
    with np.errstate(divide="ignore"):
        log_prior = np.log(docs / docs.sum())
    return NaiveBayes(list(classes), tuple(sizes), vocabulary, log_prior, log_likelihood)


def accuracy(model: NaiveBayes, names: Sequence[str], labels: Sequence[str]) -> float:
    """Fraction of names whose predicted class equals the label."""
    if not names:
        raise ValueError("cannot compute the accuracy of an empty set")
    predicted = model.predict(names)
    return sum(p == y for p, y in zip(predicted, labels, strict=True)) / len(labels)
