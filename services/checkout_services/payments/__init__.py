"""The payments service: PSP routing, authorize/capture/void/refund without double charges."""
