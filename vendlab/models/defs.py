"""The owner's views: names, keys and the definitions every implementation follows.

Implemented twice, independently: in Spark (``vendlab.jobs.views.view_rows``, for kappa, lambda's
speed and batch layers) and in plain Python (``vendlab.oracle``). Both are additive sums over
valid, unique events, keyed with the event's simulated hour ``HOUR`` = the first 13 characters of
its ``event_time`` (``2026-01-05T06``, UTC), and read as a sum over buckets like every view.

=====================================  ==============================  =================================
view                                   key                             value (summed)
=====================================  ==============================  =================================
revenue_cents_by_machine_hour          machine|HOUR                    quantity x unit price in cents
items_by_place_hour                    place|HOUR                      quantity
items_by_machine_product_hour          machine|product|HOUR            quantity
restocked_by_machine_product_hour      machine|product|HOUR            restock quantity
stock_reported_by_machine_product_hour machine|product|HOUR            stock in a telemetry reading
telemetry_by_machine_hour              machine|HOUR|stat               per reading, stat:
                                                                       readings 1; temp_centi and
                                                                       temp_centi_sq: temperature in
                                                                       1/100 degree (clamped to
                                                                       TEMP_RANGE, rounded half up)
                                                                       and its square; faults 1 if
                                                                       error_code not in (0, 9);
                                                                       out_of_service 1 if it is 9;
                                                                       offset_ms: ms since the hour
=====================================  ==============================  =================================

Healthy vs unhealthy uses the existing ``items_by_category`` and ``revenue_cents_by_category``.
Everything else the owner asks (profit after fixed costs, current stock, sell-out forecasts,
breakdown risk) is derived from these at read time (``vendlab.models``).
"""

from __future__ import annotations

from datetime import UTC, datetime

REVENUE_BY_MACHINE_HOUR = "revenue_cents_by_machine_hour"
ITEMS_BY_PLACE_HOUR = "items_by_place_hour"
ITEMS_BY_MACHINE_PRODUCT_HOUR = "items_by_machine_product_hour"
RESTOCKED_BY_MACHINE_PRODUCT_HOUR = "restocked_by_machine_product_hour"
STOCK_REPORTED_BY_MACHINE_PRODUCT_HOUR = "stock_reported_by_machine_product_hour"
TELEMETRY_BY_MACHINE_HOUR = "telemetry_by_machine_hour"

OWNER_VIEWS = (
    REVENUE_BY_MACHINE_HOUR,
    ITEMS_BY_PLACE_HOUR,
    ITEMS_BY_MACHINE_PRODUCT_HOUR,
    RESTOCKED_BY_MACHINE_PRODUCT_HOUR,
    STOCK_REPORTED_BY_MACHINE_PRODUCT_HOUR,
    TELEMETRY_BY_MACHINE_HOUR,
)

TELEMETRY_STATS = ("readings", "temp_centi", "temp_centi_sq", "faults", "out_of_service", "offset_ms")
OUT_OF_SERVICE = 9  # error_code of a reading from a machine that is out of order
TEMP_RANGE = (-50.0, 100.0)  # degrees C: readings outside are clamped (keeps the sums bounded)
SEP = "|"
HOUR_CHARS = 13  # "2026-01-05T06"
HOUR_MS = 3_600_000


def hour_of(event_time: str) -> str:
    return event_time[:HOUR_CHARS]


def hour_index(hour: str) -> int:
    """ "2026-01-05T06" -> hours since the epoch."""
    dt = datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    return int(dt.timestamp()) // 3600


def hour_text(index: int) -> str:
    return datetime.fromtimestamp(index * 3600, tz=UTC).strftime("%Y-%m-%dT%H")


def key(*parts: str) -> str:
    return SEP.join(parts)
