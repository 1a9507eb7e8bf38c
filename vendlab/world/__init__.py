"""The simulated world: what the fleet is and what it emits.

- ``catalog``   the fleet: machines, places, products (seeded)
- ``generator`` the vectorised event generator and its manifest (the truth every view is checked against)
- ``corpus``    bad (and oddly shaped valid) input lines with the contract's verdict
- ``scenario``  seeded long scenarios (finished logs) for the owner's models
"""
