"""The Pluvo GraphQL client: operations as data (`ops`), and the client that sends them.

Submodules are imported where they are used: `sync.config.pluvo` is loaded by every
command with the config, and must not pull in aiohttp and gql for a dry run.
"""
