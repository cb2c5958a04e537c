"""The citizen's records and the rules on them: citizens and speaker links, certificates, the consent
ledger, My Data, tokens, wallets, demo data, one clock and the shared cryptography.

Nothing here knows about dialog, HTTP, voice, search or the wallet protocols (see pyproject's
import-linter contracts)."""
