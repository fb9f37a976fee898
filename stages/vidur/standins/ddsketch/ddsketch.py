"""A relative-error quantile sketch with the interface Vidur uses from
`ddsketch.ddsketch.DDSketch` (DDSketch: Masson, Rim and Lee, VLDB 2019).

Vidur keeps one per batch-level metric (cdf_sketch.py) and reads its
count, sum, average, min, max and quantiles. A value x > 0 goes to bucket
ceil(log_gamma(x)) with gamma = (1 + a) / (1 - a); a bucket answers with
the value whose relative distance to both of its ends is a, so every
quantile is within relative accuracy a of a value that was added. Zero
and negative values are kept in their own counters (negatives mirrored).
gsim reads none of these statistics; they only have to be right for the
CSVs Vidur writes beside the outputs gsim converts.
"""

import math


class DDSketch:
    def __init__(self, relative_accuracy=0.01):
        if not 0 < relative_accuracy < 1:
            raise ValueError("relative_accuracy must be in (0, 1)")
        self.relative_accuracy = relative_accuracy
        self._gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self._log_gamma = math.log(self._gamma)
        self._pos = {}  # bucket index -> count, values > 0
        self._neg = {}  # bucket index of -x -> count, values < 0
        self._zeros = 0
        self._count = 0
        self._sum = 0.0
        self._min = float("inf")
        self._max = float("-inf")

    def _key(self, x):
        return math.ceil(math.log(x) / self._log_gamma)

    def _value(self, key):
        # Midpoint in relative terms of (gamma^(key-1), gamma^key].
        return 2 * self._gamma**key / (self._gamma + 1)

    def add(self, val, weight=1):
        if weight <= 0:
            raise ValueError("weight must be positive")
        if val > 0:
            k = self._key(val)
            self._pos[k] = self._pos.get(k, 0) + weight
        elif val < 0:
            k = self._key(-val)
            self._neg[k] = self._neg.get(k, 0) + weight
        else:
            self._zeros += weight
        self._count += weight
        self._sum += val * weight
        self._min = min(self._min, val)
        self._max = max(self._max, val)

    def get_quantile_value(self, quantile):
        if not 0 <= quantile <= 1 or self._count == 0:
            return None
        rank = quantile * (self._count - 1)
        seen = 0
        # Negatives first, largest magnitude first.
        for k in sorted(self._neg, reverse=True):
            seen += self._neg[k]
            if seen > rank:
                return -self._value(k)
        seen += self._zeros
        if seen > rank:
            return 0.0
        for k in sorted(self._pos):
            seen += self._pos[k]
            if seen > rank:
                return self._value(k)
        return self._max

    @property
    def count(self):
        return self._count

    @property
    def num_values(self):
        return self._count

    @property
    def sum(self):
        return self._sum

    @property
    def avg(self):
        return self._sum / self._count if self._count else 0.0
