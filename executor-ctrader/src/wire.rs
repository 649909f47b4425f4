//! Pure translations between the executor core's values and Open API messages: no session, no
//! state. The live shell (`oracle_executor::live`) and the deterministic simulation's driver
//! ([`crate::link::Link`]) both use them, so both speak the same Open API. A timeframe's
//! trendbar period and back is `oracle_ctrader`'s one map (`From` both ways).

use oracle_ctrader::proto::{
    ProtoOaClosePositionReq, ProtoOaDeal, ProtoOaDealListRes, ProtoOaExecutionEvent,
    ProtoOaExecutionType, ProtoOaExpectedMarginRes, ProtoOaGetPositionUnrealizedPnLRes,
    ProtoOaNewOrderReq, ProtoOaOrder, ProtoOaOrderErrorEvent, ProtoOaOrderStatus, ProtoOaOrderType,
    ProtoOaReconcileRes, ProtoOaSymbol, ProtoOaTradeSide, ProtoOaTraderRes,
};
use oracle_ctrader::units;
use oracle_executor_core::broker::{BrokerPosition, OrderLookup, OrderReq, OrderResult};
use oracle_executor_core::risk::Account;
use oracle_executor_core::symbols::TradingMode;
use oracle_executor_core::volume::SymbolSpec;

/// The executor's facts of a broker symbol, under its model name.
pub fn spec_of(name: &str, s: &ProtoOaSymbol) -> SymbolSpec {
    SymbolSpec {
        name: name.to_string(),
        id: s.symbol_id,
        digits: s.digits.max(0) as u32,
        pip_position: s.pip_position.max(0) as u32,
        lot_size: s.lot_size.unwrap_or(0),
        min_volume: s.min_volume.unwrap_or(0),
        step_volume: s.step_volume.unwrap_or(0),
        max_volume: s.max_volume.unwrap_or(i64::MAX),
        trading_mode: TradingMode::from_wire(s.trading_mode),
    }
}

/// What an execution event says of its order: a fill, a final refusal (rejected, cancelled,
/// expired: the broker's error code, else the execution type), or `None` (accepted, swapped,
/// …: not an outcome).
pub fn fill_of(ev: &ProtoOaExecutionEvent) -> Option<OrderResult> {
    let t = ProtoOaExecutionType::try_from(ev.execution_type).ok()?;
    match t {
        ProtoOaExecutionType::OrderFilled | ProtoOaExecutionType::OrderPartialFill => {
            let pos = ev.position.as_ref()?;
            let price = ev
                .deal
                .as_ref()
                .and_then(|d| d.execution_price)
                .or_else(|| ev.order.as_ref().and_then(|o| o.execution_price))
                .or(pos.price)
                .unwrap_or(0.0);
            let volume = ev
                .deal
                .as_ref()
                .map_or(pos.trade_data.volume, |d| d.filled_volume);
            Some(OrderResult::Filled {
                position_id: pos.position_id as u64,
                price,
                volume,
            })
        }
        ProtoOaExecutionType::OrderRejected
        | ProtoOaExecutionType::OrderCancelled
        | ProtoOaExecutionType::OrderExpired => Some(OrderResult::Rejected {
            code: ev
                .error_code
                .clone()
                .unwrap_or_else(|| t.as_str_name().to_string()),
            msg: t.as_str_name().to_string(),
        }),
        _ => None,
    }
}

/// The key an execution event's order is awaited under: its client order id, or `pos:<id>`
/// for a closing order (a close carries no client order id).
pub fn fill_key(ev: &ProtoOaExecutionEvent) -> Option<String> {
    let o = ev.order.as_ref()?;
    if o.closing_order == Some(true) {
        return o.position_id.map(close_key);
    }
    o.client_order_id.clone()
}

/// The key a close of `position_id` is awaited under (see [`fill_key`]).
pub fn close_key(position_id: impl std::fmt::Display) -> String {
    format!("pos:{position_id}")
}

/// An order error event as the order's outcome: refused with the broker's code.
pub fn order_error_result(ev: &ProtoOaOrderErrorEvent) -> OrderResult {
    OrderResult::Rejected {
        code: ev.error_code.clone(),
        msg: ev.description.clone().unwrap_or_default(),
    }
}

/// A market-range entry of `account` on `symbol_id` (the symbol's broker id).
pub fn new_order_req(account: i64, symbol_id: i64, r: &OrderReq) -> ProtoOaNewOrderReq {
    ProtoOaNewOrderReq {
        ctid_trader_account_id: account,
        symbol_id,
        order_type: ProtoOaOrderType::MarketRange as i32,
        trade_side: if r.buy {
            ProtoOaTradeSide::Buy
        } else {
            ProtoOaTradeSide::Sell
        } as i32,
        volume: r.volume,
        base_slippage_price: Some(r.base_price),
        slippage_in_points: Some(i32::try_from(r.slippage_points).unwrap_or(i32::MAX)),
        label: Some(r.label.clone()),
        client_order_id: Some(r.client_order_id.clone()),
        ..Default::default()
    }
}

/// The close of `volume` of a position.
pub fn close_position_req(account: i64, position_id: u64, volume: i64) -> ProtoOaClosePositionReq {
    ProtoOaClosePositionReq {
        ctid_trader_account_id: account,
        position_id: position_id as i64,
        volume,
        ..Default::default()
    }
}

/// The open positions of a `ReconcileRes`; `name_of` names a symbol id.
pub fn positions_of(
    r: &ProtoOaReconcileRes,
    name_of: impl Fn(i64) -> String,
) -> Vec<BrokerPosition> {
    r.position
        .iter()
        .map(|p| BrokerPosition {
            position_id: p.position_id as u64,
            symbol: name_of(p.trade_data.symbol_id),
            label: p.trade_data.label.clone().unwrap_or_default(),
            client_order_id: String::new(),
            buy: p.trade_data.trade_side == ProtoOaTradeSide::Buy as i32,
            volume: p.trade_data.volume,
            price: p.price.unwrap_or(0.0),
        })
        .collect()
}

/// The account from its three reads: the trader (balance), the open positions (used margin)
/// and, when the broker answered it, the positions' unrealized P&L (equity = balance + it).
/// `money_digits`: the account's, for a trader that does not say.
pub fn account_of(
    t: &ProtoOaTraderRes,
    rec: &ProtoOaReconcileRes,
    pnl: Option<&ProtoOaGetPositionUnrealizedPnLRes>,
    money_digits: u32,
) -> Account {
    let md = t.trader.money_digits.unwrap_or(money_digits);
    let balance = units::money_to_f64(t.trader.balance, md);
    let used: f64 = rec
        .position
        .iter()
        .map(|p| {
            units::money_to_f64(
                p.used_margin.unwrap_or(0) as i64,
                p.money_digits.unwrap_or(md),
            )
        })
        .sum();
    let floating: f64 = pnl.map_or(0.0, |r| {
        r.position_unrealized_pn_l
            .iter()
            .map(|p| units::money_to_f64(p.net_unrealized_pn_l, r.money_digits))
            .sum()
    });
    let equity = balance + floating;
    Account {
        balance,
        equity,
        free_margin: equity - used,
    }
}

/// The expected margin of `volume` on one side from an `ExpectedMarginRes` (`None`: the
/// volume is not in the answer). `money_digits`: the account's, for an answer that does not say.
pub fn margin_of(
    m: &ProtoOaExpectedMarginRes,
    volume: i64,
    buy: bool,
    money_digits: u32,
) -> Option<f64> {
    let md = m.money_digits.unwrap_or(money_digits);
    let x = m.margin.iter().find(|x| x.volume == volume)?;
    Some(units::money_to_f64(
        if buy { x.buy_margin } else { x.sell_margin },
        md,
    ))
}

/// An order found by its client order id in an `OrderListRes` (the latest with it).
pub fn order_with_coid<'a>(orders: &'a [ProtoOaOrder], coid: &str) -> Option<&'a ProtoOaOrder> {
    orders
        .iter()
        .rev()
        .find(|x| x.client_order_id.as_deref() == Some(coid))
}

/// What became of an order found by its client order id: filled (price and volume from its
/// deals when the broker gave them, else from the order), not executed (rejected, cancelled,
/// expired), or `None` (still working: not an outcome yet).
pub fn order_outcome(order: &ProtoOaOrder, deals: &[ProtoOaDeal]) -> Option<OrderResult> {
    match ProtoOaOrderStatus::try_from(order.order_status).ok()? {
        ProtoOaOrderStatus::OrderStatusFilled => {
            let price = deals
                .iter()
                .find_map(|d| d.execution_price)
                .or(order.execution_price)
                .unwrap_or(0.0);
            let volume = if deals.is_empty() {
                order.executed_volume.unwrap_or(order.trade_data.volume)
            } else {
                deals.iter().map(|d| d.filled_volume).sum()
            };
            let position_id = order
                .position_id
                .or_else(|| deals.first().map(|d| d.position_id))
                .unwrap_or(0);
            Some(OrderResult::Filled {
                position_id: position_id as u64,
                price,
                volume,
            })
        }
        s @ (ProtoOaOrderStatus::OrderStatusRejected
        | ProtoOaOrderStatus::OrderStatusCancelled
        | ProtoOaOrderStatus::OrderStatusExpired) => Some(OrderResult::Rejected {
            code: s.as_str_name().to_string(),
            msg: "found by client order id: not executed".into(),
        }),
        _ => None,
    }
}

/// An unknown order looked up without its client order id, from the open positions and the
/// deals since its intent: a close whose position is gone filled; an entry whose position (our
/// label, side, volume, opened since) is open filled, or one whose opening deal is in the list
/// (opened and closed again since). `None`: no trace (never executed). `name_of` names a
/// symbol id.
pub fn lookup_in_positions_and_deals(
    o: &OrderLookup,
    positions: &ProtoOaReconcileRes,
    deals: &ProtoOaDealListRes,
    name_of: impl Fn(i64) -> String,
) -> Option<OrderResult> {
    if let Some(pid) = o.closes {
        if positions
            .position
            .iter()
            .any(|p| p.position_id as u64 == pid)
        {
            return None;
        }
        let price = deals
            .deal
            .iter()
            .find(|d| d.position_id as u64 == pid && d.close_position_detail.is_some())
            .and_then(|d| d.execution_price)
            .unwrap_or(0.0);
        return Some(OrderResult::Filled {
            position_id: pid,
            price,
            volume: o.volume,
        });
    }
    let side = if o.buy {
        ProtoOaTradeSide::Buy
    } else {
        ProtoOaTradeSide::Sell
    } as i32;
    let found = positions.position.iter().find(|p| {
        p.trade_data.label.as_deref() == Some(o.label.as_str())
            && p.trade_data.trade_side == side
            && p.trade_data.volume == o.volume
            && p.trade_data.open_timestamp.unwrap_or(0) >= o.since * 1000
    });
    if let Some(p) = found {
        return Some(OrderResult::Filled {
            position_id: p.position_id as u64,
            price: p.price.unwrap_or(0.0),
            volume: p.trade_data.volume,
        });
    }
    let opened = deals.deal.iter().find(|d| {
        d.trade_side == side
            && d.filled_volume == o.volume
            && d.close_position_detail.is_none()
            && name_of(d.symbol_id) == o.symbol
    });
    opened.map(|d| OrderResult::Filled {
        position_id: d.position_id as u64,
        price: d.execution_price.unwrap_or(0.0),
        volume: d.filled_volume,
    })
}
