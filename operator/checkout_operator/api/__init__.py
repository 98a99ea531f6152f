"""The API: pydantic models of the CheckoutRegion and PSPRoute custom resources."""
