"""The agent's SNMP engine. Import from the modules; this package file imports nothing.

- :mod:`~agent.snmp.values`: ``OID``, :class:`SnmpValue` (plain data, no pysnmp)
- :mod:`~agent.snmp.errors`: the :class:`SnmpError` tree and the messages an operator reads
- :mod:`~agent.snmp.credentials`: :class:`Credentials`, SNMPv3 protocol names and security levels
- :mod:`~agent.snmp.ber`: the agent's one BER codec (pure); :mod:`~agent.snmp.unsigned_repair` and
  :mod:`~agent.snmp.v3_discovery` on its primitives
- :mod:`~agent.snmp.session`: the :class:`Session` protocol, one request/response exchange
- :mod:`~agent.snmp.community`: the v1/v2c session on our own socket (the fast path)
- :mod:`~agent.snmp.pysnmp_session`: the pysnmp session (SNMPv3); the only pysnmp import for polling
- :mod:`~agent.snmp.target`: :class:`SnmpTarget`, get and walk written once over any session
- :mod:`~agent.snmp.engine`: :class:`SnmpEngine`, which makes a target per device
- :mod:`~agent.snmp.trap_events`, :mod:`~agent.snmp.traps`: notifications as data, and their receiver
"""
