"""The one type for a chunk of bytes in flight.

Bodies move through s3lite as the pieces they arrive in (the socket's bytes, slices of
them as memoryviews, a writer's bytearray) so that no layer copies them to change
their type; every layer that takes a chunk takes any of these.
"""

Buffer = bytes | bytearray | memoryview
