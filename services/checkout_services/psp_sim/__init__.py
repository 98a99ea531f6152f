"""PSP simulator: Stripe-like, Adyen-like and local-method (UPI, iDEAL, Pix) providers.

The one simulated part of the system. It shares no code with the payments service (an
import-linter contract enforces it both ways), so the service cannot accidentally agree with
the simulator through a shared helper: they meet only on the wire.
"""
