"""The owner's questions: definitions of the owner's views and the model step over them.

- ``defs``      view names, keys and definitions (shared by the Spark jobs and validation)
- ``hourly``    the stored views as hourly arrays per machine, product and place
- ``stock``     current stock per machine x product, derived from telemetry, restocks and sales
- ``forecast``  demand forecast and time to sell-out (and the naive baseline)
- ``risk``      breakdown risk per machine (and the constant baseline)
- ``evaluate``  quality against the generator's manifest
- ``scenario``  seeded logs of several simulated days (tests, docs/questions.md)

See docs/questions.md.
"""
