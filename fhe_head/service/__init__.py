"""The verification server (FastAPI app + template store). Server side only: nothing here decrypts."""
