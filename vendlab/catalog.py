"""The fleet: machines, places and products, made reproducibly from a seed with Faker."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from faker import Faker

# (product, category, base price in cents, unit cost in cents)
PRODUCTS = (
    ("chocolate_bar", "unhealthy", 150, 60),
    ("potato_chips", "unhealthy", 180, 70),
    ("cola", "unhealthy", 200, 55),
    ("gummy_bears", "unhealthy", 160, 50),
    ("cookies", "unhealthy", 170, 65),
    ("apple_chips", "healthy", 220, 110),
    ("granola_bar", "healthy", 190, 90),
    ("trail_mix", "healthy", 250, 130),
    ("water", "healthy", 120, 30),
    ("rice_cakes", "healthy", 170, 80),
)

# Kind of place -> relative footfall (how many people pass by the machine).
PLACE_KINDS = {
    "Station": 3.0,
    "Mall": 2.5,
    "University": 2.0,
    "Hospital": 1.5,
    "Office": 1.2,
    "Gym": 1.0,
    "Library": 0.6,
    "Car Park": 0.4,
}

# Kind of place -> how busy it is at each hour of the (UTC) day, 0..23, relative to its busiest
# hour. Demand at a machine = footfall x profile[hour]: commuters at stations, lunch at offices,
# evenings at gyms, nights only at hospitals and stations.
HOURLY_PROFILE = {
    "Station":    (.08, .04, .03, .03, .05, .25, .75, 1.0, .95, .55, .40, .40, .50, .45, .40, .50, .75, 1.0, .85, .55,
                   .40, .30, .20, .12),
    "Mall":       (.02, .01, .01, .01, .01, .01, .02, .05, .12, .35, .60, .75, .90, .95, 1.0, .95, .90, .85, .75, .60,
                   .35, .12, .04, .02),
    "University": (.02, .01, .01, .01, .01, .02, .05, .20, .55, .80, .90, .95, 1.0, .90, .80, .75, .60, .40, .25, .20,
                   .15, .10, .05, .03),
    "Hospital":   (.30, .25, .22, .22, .25, .35, .55, .75, .90, .95, 1.0, .95, .95, .90, .90, .85, .80, .75, .70, .65,
                   .60, .50, .40, .35),
    "Office":     (.01, .01, .01, .01, .01, .02, .06, .30, .70, .85, 1.0, .80, .95, .85, .70, .90, .70, .40, .15, .05,
                   .03, .02, .01, .01),
    "Gym":        (.02, .01, .01, .01, .05, .20, .60, .70, .45, .30, .25, .30, .40, .30, .25, .30, .55, .85, 1.0, .95,
                   .70, .40, .15, .05),
    "Library":    (.01, .01, .01, .01, .01, .01, .02, .05, .30, .60, .75, .80, .85, .90, .90, .85, .80, .75, .65, .50,
                   .35, .15, .03, .01),
    "Car Park":   (.05, .03, .02, .02, .03, .10, .40, .80, 1.0, .70, .50, .55, .65, .55, .50, .60, .85, 1.0, .80, .45,
                   .30, .20, .12, .08),
}

# Kinds of place whose visitors prefer healthy snacks (healthy products weigh this much more there).
HEALTHY_KINDS = {"Gym": 2.0, "Hospital": 1.5, "University": 1.2}

# A real machine sells about this many items a day. The lab's fleet sells far more (the event rate
# is a throughput knob), so rent and energy are scaled by the run's volume (see
# ``vendlab.generator.Generator.volume_factor`` and docs/questions.md, "Money").
REFERENCE_ITEMS_PER_MACHINE_DAY = 150


@dataclass(frozen=True)
class Product:
    product: str
    category: str
    price_cents: int
    cost_cents: int


@dataclass(frozen=True)
class Machine:
    machine_id: str
    place: str
    city: str
    place_kind: str
    footfall: float
    fixed_cost_cents_per_day: int


@dataclass(frozen=True)
class Catalog:
    seed: int
    machines: tuple[Machine, ...]
    products: tuple[Product, ...]
    customers: int

    @property
    def machine_ids(self) -> set[str]:
        return {m.machine_id for m in self.machines}

    @property
    def product_names(self) -> set[str]:
        return {p.product for p in self.products}

    def to_json(self) -> str:
        return json.dumps(
            {
                "seed": self.seed,
                "customers": self.customers,
                "machines": [asdict(m) for m in self.machines],
                "products": [asdict(p) for p in self.products],
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> "Catalog":
        d = json.loads(text)
        return cls(
            seed=d["seed"],
            customers=d["customers"],
            machines=tuple(Machine(**m) for m in d["machines"]),
            products=tuple(Product(**p) for p in d["products"]),
        )

    def save(self, path: Path) -> None:
        tmp = path.with_name("." + path.name + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "Catalog":
        return cls.from_json(path.read_text())


def make_catalog(seed: int, machines: int = 20, customers: int = 5000) -> Catalog:
    """A fleet of ``machines`` machines in different places; same seed, same fleet."""
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = np.random.default_rng([seed, 1])
    kinds = list(PLACE_KINDS)
    fleet = []
    used = set()
    for i in range(machines):
        kind = kinds[i % len(kinds)] if i < len(kinds) else kinds[int(rng.integers(len(kinds)))]
        city = fake.city()
        place = f"{city} {kind}"
        while place in used:
            city = fake.city()
            place = f"{city} {kind}"
        used.add(place)
        footfall = round(PLACE_KINDS[kind] * float(rng.uniform(0.7, 1.3)), 3)
        # Rent and energy per day at the reference volume (REFERENCE_ITEMS_PER_MACHINE_DAY for an
        # average machine, ~15 000 cents of gross margin a day): a quiet place with a high rent
        # loses money.
        fixed = int(rng.uniform(5000, 20000))
        fleet.append(Machine(f"VM-{i + 1:03d}", place, city, kind, footfall, fixed))
    products = tuple(
        Product(name, cat, int(round(price * float(rng.uniform(0.9, 1.1)), -1)), cost)
        for name, cat, price, cost in PRODUCTS
    )
    return Catalog(seed=seed, machines=tuple(fleet), products=products, customers=customers)
