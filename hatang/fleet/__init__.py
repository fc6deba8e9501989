"""The centre's fleet tools behind ``hatang fleet`` (hatang/cli_fleet.py): the fleet directory with the
centre's CA and the broker's password file (:mod:`hatang.fleet.layout`), Mosquitto password entries
(:mod:`hatang.fleet.mosquitto_passwords`), certificates (:mod:`hatang.fleet.certificates`, the only
``cryptography`` import) and enrolment bundles for offices (:mod:`hatang.fleet.enrolment`)."""
