"""What one output channel has delivered over time: the watchdog's memory per channel.

The output holds each command until the next one, so a channel's history is a sequence
of on-intervals. From it come the three limits that depend on time rather than on one
pulse: continuous on-time, duty cycle over the sliding ``DUTY_WINDOW_S`` window, and
how far the amplitude may rise at the next command. Times are trial seconds.
"""

from __future__ import annotations

import math
from collections import deque

from controller.safety.limits import DUTY_WINDOW_S, RISE_WINDOW_S


class ChannelHistory:
    """On-intervals and the held amplitude of one channel.

    The duty cycle keeps the intervals that end inside the window and a running total
    of their lengths, so each query costs O(1) amortised however many there are.
    """

    __slots__ = (
        "_closed", "_closed_total_s", "amplitude_ma", "last_command_s", "on", "on_since_s"
    )

    def __init__(self) -> None:
        self.amplitude_ma = 0.0  # peak amplitude held now, 0 while off
        self.on = False  # True while the channel stimulates
        self.on_since_s = math.nan  # start of the current on-interval, NaN while off
        self.last_command_s = -math.inf
        self._closed: deque[tuple[float, float]] = deque()
        self._closed_total_s = 0.0

    def continuous_on_s(self, t_s: float) -> float:
        """How long the channel has stimulated without a break at ``t_s``."""
        return t_s - self.on_since_s if self.on else 0.0

    def duty(self, t_s: float) -> float:
        """Fraction of the window ending at ``t_s`` spent stimulating (time before the
        first command counts as off)."""
        start = t_s - DUTY_WINDOW_S
        while self._closed and self._closed[0][1] <= start:
            begin, end = self._closed.popleft()
            self._closed_total_s -= end - begin
        total = self._closed_total_s
        if self._closed:
            total -= max(0.0, start - self._closed[0][0])
        if self.on:
            total += t_s - max(self.on_since_s, start)
        return max(0.0, total) / DUTY_WINDOW_S

    def allowed_amplitude_ma(self, t_s: float, rise_ma_per_s: float) -> float:
        """The highest amplitude a command at ``t_s`` may deliver under the rise limit."""
        dt_s = min(max(t_s - self.last_command_s, 0.0), RISE_WINDOW_S)
        return self.amplitude_ma + rise_ma_per_s * dt_s

    def deliver(self, t_s: float, amplitude_ma: float) -> None:
        """The channel holds ``amplitude_ma`` (0: off) from ``t_s`` on."""
        if amplitude_ma > 0.0 and not self.on:
            self.on = True
            self.on_since_s = t_s
        elif amplitude_ma <= 0.0 and self.on:
            self._close(t_s)
        self.amplitude_ma = max(0.0, amplitude_ma)
        self.last_command_s = t_s

    def force_off(self, t_s: float) -> None:
        """The output was switched off at ``t_s`` (a fault, an e-stop, a shutdown)."""
        if self.on:
            self._close(t_s)
        self.amplitude_ma = 0.0

    def _close(self, t_s: float) -> None:
        if t_s > self.on_since_s:
            self._closed.append((self.on_since_s, t_s))
            self._closed_total_s += t_s - self.on_since_s
        self.on = False
        self.on_since_s = math.nan
