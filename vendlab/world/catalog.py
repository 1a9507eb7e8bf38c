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
    "Station": (
        0.08,
        0.04,
        0.03,
        0.03,
        0.05,
        0.25,
        0.75,
        1.0,
        0.95,
        0.55,
        0.40,
        0.40,
        0.50,
        0.45,
        0.40,
        0.50,
        0.75,
        1.0,
        0.85,
        0.55,
        0.40,
        0.30,
        0.20,
        0.12,
    ),
    "Mall": (
        0.02,
        0.01,
        0.01,
        0.01,
        0.01,
        0.01,
        0.02,
        0.05,
        0.12,
        0.35,
        0.60,
        0.75,
        0.90,
        0.95,
        1.0,
        0.95,
        0.90,
        0.85,
        0.75,
        0.60,
        0.35,
        0.12,
        0.04,
        0.02,
    ),
    "University": (
        0.02,
        0.01,
        0.01,
        0.01,
        0.01,
        0.02,
        0.05,
        0.20,
        0.55,
        0.80,
        0.90,
        0.95,
        1.0,
        0.90,
        0.80,
        0.75,
        0.60,
        0.40,
        0.25,
        0.20,
        0.15,
        0.10,
        0.05,
        0.03,
    ),
    "Hospital": (
        0.30,
        0.25,
        0.22,
        0.22,
        0.25,
        0.35,
        0.55,
        0.75,
        0.90,
        0.95,
        1.0,
        0.95,
        0.95,
        0.90,
        0.90,
        0.85,
        0.80,
        0.75,
        0.70,
        0.65,
        0.60,
        0.50,
        0.40,
        0.35,
    ),
    "Office": (
        0.01,
        0.01,
        0.01,
        0.01,
        0.01,
        0.02,
        0.06,
        0.30,
        0.70,
        0.85,
        1.0,
        0.80,
        0.95,
        0.85,
        0.70,
        0.90,
        0.70,
        0.40,
        0.15,
        0.05,
        0.03,
        0.02,
        0.01,
        0.01,
    ),
    "Gym": (
        0.02,
        0.01,
        0.01,
        0.01,
        0.05,
        0.20,
        0.60,
        0.70,
        0.45,
        0.30,
        0.25,
        0.30,
        0.40,
        0.30,
        0.25,
        0.30,
        0.55,
        0.85,
        1.0,
        0.95,
        0.70,
        0.40,
        0.15,
        0.05,
    ),
    "Library": (
        0.01,
        0.01,
        0.01,
        0.01,
        0.01,
        0.01,
        0.02,
        0.05,
        0.30,
        0.60,
        0.75,
        0.80,
        0.85,
        0.90,
        0.90,
        0.85,
        0.80,
        0.75,
        0.65,
        0.50,
        0.35,
        0.15,
        0.03,
        0.01,
    ),
    "Car Park": (
        0.05,
        0.03,
        0.02,
        0.02,
        0.03,
        0.10,
        0.40,
        0.80,
        1.0,
        0.70,
        0.50,
        0.55,
        0.65,
        0.55,
        0.50,
        0.60,
        0.85,
        1.0,
        0.80,
        0.45,
        0.30,
        0.20,
        0.12,
        0.08,
    ),
}

# Kinds of place whose visitors prefer healthy snacks (healthy products weigh this much more there).
HEALTHY_KINDS = {"Gym": 2.0, "Hospital": 1.5, "University": 1.2}

# A real machine sells about this many items a day. The lab's fleet sells far more (the event rate
# is a throughput knob), so rent and energy are scaled by the run's volume (see
# ``vendlab.world.generator.Generator.volume_factor`` and docs/questions.md, "Money").
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
    def from_json(cls, text: str) -> Catalog:
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
    def load(cls, path: Path) -> Catalog:
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
