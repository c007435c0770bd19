"""UDFs shipped with libertem-live: recording and live monitoring."""
