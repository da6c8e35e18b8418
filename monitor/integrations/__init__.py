"""What the monitor tells the world besides its pin and event log: MQTT, hooks.

Each integration is a :class:`~monitor.status.Listener` built by the command
line (``cmd_run``) and handed to the frame loop; each imports its library
(paho-mqtt, ...) only when it is built, so the loop's import graph stays small.
"""
