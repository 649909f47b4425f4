#!/usr/bin/env python3
"""An independent Open API client for checking oracle-sim: Spotware's own release-91 `.proto`
files compiled by `protoc`, Python protobuf (which refuses a message missing a proto2 `required`
field), plain `ssl` sockets. Nothing from this repository's Rust code.

Setup (once, outside the repository):
  python3 -m venv /tmp/pyproto && /tmp/pyproto/bin/pip install grpcio-tools
  # the four .proto files of spotware/openapi-proto-messages at its "91 Release" commit, in DIR:
  /tmp/pyproto/bin/python -m grpc_tools.protoc -I DIR --python_out=DIR DIR/*.proto
Run against a sim (default credentials, synthetic data):
  oracle-sim --port 0 --synthetic 600 --cert-out /tmp/sim-ca.pem --json   # prints the port
  /tmp/pyproto/bin/python sim/tools/independent_client.py DIR 127.0.0.1 PORT /tmp/sim-ca.pem
It walks auth, symbols, history, spots + live bars, an order, reconcile, close, deals, ticks,
refresh and a garbage frame, printing one line per check; exit 1 at the first failure.
"""
import socket, ssl, struct, sys, time
sys.path.insert(0, sys.argv[1])
from OpenApiCommonMessages_pb2 import *
from OpenApiMessages_pb2 import *
from OpenApiModelMessages_pb2 import *
from OpenApiCommonModelMessages_pb2 import *

host, port, ca = sys.argv[2], int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection((host, port)), server_hostname='localhost')
names = {}
for mod in [sys.modules['OpenApiMessages_pb2'], sys.modules['OpenApiCommonMessages_pb2']]:
    for n in dir(mod):
        c = getattr(mod, n)
        if isinstance(c, type) and hasattr(c, 'DESCRIPTOR') and 'payloadType' in c.DESCRIPTOR.fields_by_name:
            names[c.DESCRIPTOR.fields_by_name['payloadType'].default_value] = c
n = [0]
def send(msg):
    n[0] += 1
    pm = ProtoMessage(payloadType=msg.payloadType, payload=msg.SerializeToString(), clientMsgId='py%d' % n[0])
    b = pm.SerializeToString()
    s.sendall(struct.pack('>I', len(b)) + b)
    return pm.clientMsgId
buf = b''
def recv():
    global buf
    while True:
        if len(buf) >= 4:
            ln = struct.unpack('>I', buf[:4])[0]
            if len(buf) >= 4 + ln:
                body, buf = buf[4:4+ln], buf[4+ln:]
                pm = ProtoMessage(); pm.ParseFromString(body)
                cls = names[pm.payloadType]
                m = cls(); m.ParseFromString(pm.payload)   # raises if a required field is missing
                return pm.clientMsgId if pm.HasField('clientMsgId') else None, m
        d = s.recv(65536)
        if not d: raise SystemExit('EOF')
        buf += d
def req(msg):
    cid = send(msg)
    while True:
        c, m = recv()
        if c == cid: return m
        seen.append((c, m))
seen = []
def ok(cond, what):
    print(('ok   ' if cond else 'FAIL ') + what)
    if not cond: sys.exit(1)

m = req(ProtoOAVersionReq()); ok(type(m).__name__ == 'ProtoOAVersionRes', 'version ' + m.version)
m = req(ProtoOAApplicationAuthReq(clientId='oracle-sim-client', clientSecret='oracle-sim-secret')); ok(type(m).__name__ == 'ProtoOAApplicationAuthRes', 'app auth')
m = req(ProtoOAGetAccountListByAccessTokenReq(accessToken='oracle-sim-access-token')); ok(m.permissionScope == SCOPE_TRADE and m.ctidTraderAccount[0].ctidTraderAccountId == 1001, 'account list')
m = req(ProtoOAAccountAuthReq(ctidTraderAccountId=1001, accessToken='oracle-sim-access-token')); ok(type(m).__name__ == 'ProtoOAAccountAuthRes', 'account auth')
m = req(ProtoOAAccountAuthReq(ctidTraderAccountId=1001, accessToken='oracle-sim-access-token')); ok(m.errorCode == 'ALREADY_LOGGED_IN', 'already logged in: ' + type(m).__name__)
m = req(ProtoOAAssetListReq(ctidTraderAccountId=1001)); ok(len(m.asset) >= 2, 'assets %s' % [a.name for a in m.asset])
m = req(ProtoOASymbolsListReq(ctidTraderAccountId=1001)); ok(len(m.symbol) == 3, 'symbols %s' % [x.symbolName for x in m.symbol])
m = req(ProtoOASymbolByIdReq(ctidTraderAccountId=1001, symbolId=[1, 2, 3])); ok([x.lotSize for x in m.symbol] == [10000000, 100, 100], 'symbol by id lot sizes')
m = req(ProtoOATraderReq(ctidTraderAccountId=1001)); ok(m.trader.balance == 10000000 and m.trader.moneyDigits == 2, 'trader')
now = int(time.time() * 1000)
m = req(ProtoOAGetTrendbarsReq(ctidTraderAccountId=1001, fromTimestamp=0, toTimestamp=2147483646000, period=M15, symbolId=1, count=5))
ok(len(m.trendbar) == 5 and m.HasField('timestamp') and m.hasMore, 'trendbars (timestamp set, hasMore)')
for tb in m.trendbar:
    lo = tb.low; print('     %s O %.5f H %.5f L %.5f C %.5f V %d' % (time.strftime('%Y-%m-%d %H:%M', time.gmtime(tb.utcTimestampInMinutes*60)), (lo+tb.deltaOpen)/1e5, (lo+tb.deltaHigh)/1e5, lo/1e5, (lo+tb.deltaClose)/1e5, tb.volume))
m = req(ProtoOASubscribeSpotsReq(ctidTraderAccountId=1001, symbolId=[1], subscribeToSpotTimestamp=True)); ok(type(m).__name__ == 'ProtoOASubscribeSpotsRes', 'subscribe spots')
m = req(ProtoOASubscribeLiveTrendbarReq(ctidTraderAccountId=1001, symbolId=1, period=M15)); ok(type(m).__name__ == 'ProtoOASubscribeLiveTrendbarRes', 'subscribe live trendbar')
spots, minutes = 0, set()
while len(minutes) < 3:
    c, m = seen.pop(0) if seen else recv()
    if type(m).__name__ == 'ProtoOASpotEvent':
        spots += 1
        for tb in m.trendbar: minutes.add(tb.utcTimestampInMinutes)
ok(spots > 4, 'spot events with forming bars across %d bar periods' % len(minutes))
cid = send(ProtoOANewOrderReq(ctidTraderAccountId=1001, symbolId=1, orderType=MARKET, tradeSide=BUY, volume=100000, label='py', clientOrderId='py-1'))
ex = []
while len(ex) < 2:
    c, m = recv()
    if type(m).__name__ == 'ProtoOAExecutionEvent': ok(c == cid, 'execution %s echoes clientMsgId' % ProtoOAExecutionType.Name(m.executionType)); ex.append(m)
f = ex[1]; ok(f.executionType == ORDER_FILLED and f.deal.executionPrice > 0 and f.order.clientOrderId == 'py-1', 'filled at %.5f' % f.deal.executionPrice)
pid = f.position.positionId
m = req(ProtoOAReconcileReq(ctidTraderAccountId=1001)); ok(len(m.position) == 1, 'reconcile')
m = req(ProtoOAGetPositionUnrealizedPnLReq(ctidTraderAccountId=1001)); ok(len(m.positionUnrealizedPnL) == 1, 'unrealized pnl %d' % m.positionUnrealizedPnL[0].grossUnrealizedPnL)
cid = send(ProtoOAClosePositionReq(ctidTraderAccountId=1001, positionId=pid, volume=100000))
while True:
    c, m = recv()
    if type(m).__name__ == 'ProtoOAExecutionEvent' and m.executionType == ORDER_FILLED: break
ok(m.deal.HasField('closePositionDetail'), 'closed: gross %d commission %d balance %d' % (m.deal.closePositionDetail.grossProfit, m.deal.closePositionDetail.commission, m.deal.closePositionDetail.balance))
m = req(ProtoOADealListReq(ctidTraderAccountId=1001, fromTimestamp=0, toTimestamp=2147483646000)); ok(len(m.deal) == 2 and not m.hasMore, 'deal list')
m = req(ProtoOANewOrderReq(ctidTraderAccountId=1001, symbolId=1, orderType=MARKET, tradeSide=BUY, volume=123))
ok(type(m).__name__ == 'ProtoOAOrderErrorEvent' and m.errorCode == 'TRADING_BAD_VOLUME', 'bad volume -> ' + m.errorCode)
m = req(ProtoOAGetTickDataReq(ctidTraderAccountId=1001, symbolId=1, type=BID, fromTimestamp=0, toTimestamp=2147483646000)); ok(len(m.tickData) > 0, 'tick data %d' % len(m.tickData))
m = req(ProtoOARefreshTokenReq(refreshToken='oracle-sim-refresh-token')); ok(m.tokenType == 'bearer' and m.expiresIn == 2628000, 'refresh token')
s.sendall(struct.pack('>I', 3) + b'\xff\xff\xff')
while True:
    c, m = recv()
    if type(m).__name__ == 'ProtoErrorRes': break
ok(m.errorCode == 'INVALID_REQUEST', 'garbage frame -> ProtoErrorRes ' + m.errorCode)
print('all checks passed')
