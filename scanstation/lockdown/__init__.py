"""The kiosk's system locks that depend on the station (issue 17, docs/lockdown.md).

The fixed locks are files the package ships (installer/system/: the sandboxed units, sysctl, modprobe,
polkit, sleep, journald, masks).  This package makes the rest from the configuration and the hardware
present (:mod:`~scanstation.lockdown.apply`: the USBGuard policy, the nftables ruleset, the service's IP
allow list) and checks all of them with the tools that read them (:mod:`~scanstation.lockdown.checks`).
Headless core: no Qt here.
"""
