"""Scanner back ends behind one three-call interface (list devices, capabilities, scan); see base.py."""
