from sqlalchemy import *

metadata = MetaData()

subscribers = Table('subscribers', metadata,
    Column('id', Integer, primary_key=True),
    Column('address', String(200), nullable=False),
)
