"""One adapter per provider, each holding its wire format, behind `base.PSPAdapter`."""
