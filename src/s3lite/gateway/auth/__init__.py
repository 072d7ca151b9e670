"""Who sent a request, and what that key may do: SigV4 (header, presigned, aws-chunked
bodies), the key store and the access policy."""
