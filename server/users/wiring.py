from aiohttp import web


def setup_users(app: web.Application) -> None:
    pass
