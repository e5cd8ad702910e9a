"""One colour per chip vendor, shared by the matplotlib charts and the HTML report's charts.

Kept apart from ``charts.py`` so the HTML report does not import matplotlib for a dict.
"""

from __future__ import annotations

#: one colour per chip vendor (others: ``OTHER``)
VENDOR_COLOURS = {
    "nvidia": "#76b900",
    "amd": "#ed1c24",
    "google": "#4285f4",
    "aws": "#ff9900",
    "microsoft": "#737373",
    "intel": "#0071c5",
}
OTHER = "#999999"
