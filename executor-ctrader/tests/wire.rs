//! The pure translations of `oracle_executor_ctrader::wire`.

use oracle_ctrader::proto::{
    ProtoOaDeal, ProtoOaDealListRes, ProtoOaExecutionEvent, ProtoOaExecutionType, ProtoOaOrder,
    ProtoOaOrderErrorEvent, ProtoOaOrderStatus, ProtoOaOrderType, ProtoOaPosition,
    ProtoOaReconcileRes, ProtoOaTradeData, ProtoOaTradeSide, ProtoOaTrendbarPeriod,
};
use oracle_executor_core::broker::{OrderLookup, OrderReq, OrderResult};
use oracle_executor_ctrader::wire::{
    close_position_req, fill_key, fill_of, lookup_in_positions_and_deals, new_order_req,
    order_error_result, order_outcome, positions_of,
};
use oracle_ipc::Timeframe;

fn position(id: i64, label: &str, buy: bool, volume: i64, opened_ms: i64) -> ProtoOaPosition {
    ProtoOaPosition {
        position_id: id,
        trade_data: ProtoOaTradeData {
            symbol_id: 1,
            volume,
            trade_side: if buy {
                ProtoOaTradeSide::Buy
            } else {
                ProtoOaTradeSide::Sell
            } as i32,
            label: Some(label.into()),
            open_timestamp: Some(opened_ms),
            ..Default::default()
        },
        price: Some(1.1),
        ..Default::default()
    }
}

fn exec(
    t: ProtoOaExecutionType,
    order: ProtoOaOrder,
    pos: Option<ProtoOaPosition>,
) -> ProtoOaExecutionEvent {
    ProtoOaExecutionEvent {
        execution_type: t as i32,
        order: Some(order),
        position: pos,
        ..Default::default()
    }
}

#[test]
fn an_entry_becomes_a_market_range_order_with_its_client_order_id_and_label() {
    let r = OrderReq {
        symbol: "EURUSD".into(),
        client_order_id: "oracle-EURUSD-M15-1-o".into(),
        label: "oracle:EURUSD:M15".into(),
        buy: false,
        volume: 100_000,
        base_price: 1.2345,
        slippage_points: 30,
    };
    let q = new_order_req(7, 1, &r);
    assert_eq!(q.ctid_trader_account_id, 7);
    assert_eq!(q.symbol_id, 1);
    assert_eq!(q.order_type, ProtoOaOrderType::MarketRange as i32);
    assert_eq!(q.trade_side, ProtoOaTradeSide::Sell as i32);
    assert_eq!(q.volume, 100_000);
    assert_eq!(q.client_order_id.as_deref(), Some("oracle-EURUSD-M15-1-o"));
    assert_eq!(q.label.as_deref(), Some("oracle:EURUSD:M15"));
    assert_eq!(q.base_slippage_price, Some(1.2345));
    assert_eq!(q.slippage_in_points, Some(30));
    let c = close_position_req(7, 42, 300);
    assert_eq!((c.position_id, c.volume), (42, 300));
}

#[test]
fn a_fill_is_the_orders_outcome_and_a_close_is_awaited_under_its_position() {
    let open = ProtoOaOrder {
        client_order_id: Some("c1".into()),
        execution_price: Some(1.5),
        ..Default::default()
    };
    let ev = exec(
        ProtoOaExecutionType::OrderFilled,
        open,
        Some(position(9, "oracle:X", true, 200, 0)),
    );
    assert_eq!(
        fill_of(&ev),
        Some(OrderResult::Filled {
            position_id: 9,
            price: 1.5,
            volume: 200
        })
    );
    assert_eq!(fill_key(&ev).as_deref(), Some("c1"));
    let close = ProtoOaOrder {
        closing_order: Some(true),
        position_id: Some(9),
        ..Default::default()
    };
    let ev = exec(ProtoOaExecutionType::OrderFilled, close, None);
    assert_eq!(fill_key(&ev).as_deref(), Some("pos:9"));
    // Accepted is not an outcome: the fill follows.
    let ev = exec(
        ProtoOaExecutionType::OrderAccepted,
        ProtoOaOrder::default(),
        None,
    );
    assert_eq!(fill_of(&ev), None);
}

#[test]
fn a_refusal_keeps_the_brokers_error_code() {
    let mut ev = exec(
        ProtoOaExecutionType::OrderRejected,
        ProtoOaOrder::default(),
        None,
    );
    ev.error_code = Some("NOT_ENOUGH_MONEY".into());
    assert!(
        matches!(fill_of(&ev), Some(OrderResult::Rejected { code, .. }) if code == "NOT_ENOUGH_MONEY")
    );
    let ev = exec(
        ProtoOaExecutionType::OrderCancelled,
        ProtoOaOrder::default(),
        None,
    );
    assert!(
        matches!(fill_of(&ev), Some(OrderResult::Rejected { code, .. }) if code == "ORDER_CANCELLED")
    );
    let e = ProtoOaOrderErrorEvent {
        error_code: "MARKET_CLOSED".into(),
        description: Some("closed".into()),
        ..Default::default()
    };
    assert_eq!(
        order_error_result(&e),
        OrderResult::Rejected {
            code: "MARKET_CLOSED".into(),
            msg: "closed".into()
        }
    );
}

#[test]
fn an_order_found_by_its_client_order_id_says_filled_not_executed_or_nothing_yet() {
    let mut o = ProtoOaOrder {
        order_status: ProtoOaOrderStatus::OrderStatusFilled as i32,
        position_id: Some(5),
        execution_price: Some(2.0),
        executed_volume: Some(300),
        ..Default::default()
    };
    assert_eq!(
        order_outcome(&o, &[]),
        Some(OrderResult::Filled {
            position_id: 5,
            price: 2.0,
            volume: 300
        })
    );
    let deal = ProtoOaDeal {
        execution_price: Some(2.5),
        filled_volume: 100,
        ..Default::default()
    };
    assert!(
        matches!(order_outcome(&o, &[deal]), Some(OrderResult::Filled { price, volume: 100, .. }) if price == 2.5)
    );
    o.order_status = ProtoOaOrderStatus::OrderStatusCancelled as i32;
    assert!(matches!(
        order_outcome(&o, &[]),
        Some(OrderResult::Rejected { .. })
    ));
    o.order_status = ProtoOaOrderStatus::OrderStatusAccepted as i32;
    assert_eq!(order_outcome(&o, &[]), None);
}

#[test]
fn an_unknown_close_is_filled_once_its_position_is_gone_and_an_entry_by_label_side_and_volume() {
    let name = |_: i64| "EURUSD".to_string();
    let open = ProtoOaReconcileRes {
        position: vec![position(9, "oracle:EURUSD:M15", true, 200, 100_000)],
        ..Default::default()
    };
    let none = ProtoOaReconcileRes::default();
    let deals = ProtoOaDealListRes::default();
    let close = OrderLookup {
        client_order_id: "c".into(),
        label: "oracle:EURUSD:M15".into(),
        symbol: "EURUSD".into(),
        buy: false,
        volume: 200,
        closes: Some(9),
        since: 50,
    };
    assert_eq!(
        lookup_in_positions_and_deals(&close, &open, &deals, name),
        None
    );
    assert!(matches!(
        lookup_in_positions_and_deals(&close, &none, &deals, name),
        Some(OrderResult::Filled { position_id: 9, .. })
    ));
    let entry = OrderLookup {
        buy: true,
        closes: None,
        ..close.clone()
    };
    assert!(matches!(
        lookup_in_positions_and_deals(&entry, &open, &deals, name),
        Some(OrderResult::Filled {
            position_id: 9,
            volume: 200,
            ..
        })
    ));
    // Another side: not ours.
    let sell = OrderLookup {
        buy: false,
        ..entry
    };
    assert_eq!(
        lookup_in_positions_and_deals(&sell, &open, &deals, name),
        None
    );
    let ps = positions_of(&open, name);
    assert_eq!(ps.len(), 1);
    assert!(ps[0].buy && ps[0].symbol == "EURUSD" && ps[0].label == "oracle:EURUSD:M15");
}

#[test]
fn every_timeframe_has_its_period_and_back() {
    for tf in Timeframe::ALL {
        assert_eq!(Timeframe::from(ProtoOaTrendbarPeriod::from(tf)), tf);
    }
    assert_eq!(
        ProtoOaTrendbarPeriod::from(Timeframe::M15),
        ProtoOaTrendbarPeriod::M15
    );
}
