//! The edge: Spotware's protobuf messages (from `oracle-ctrader`'s `proto` module, generated from
//! the published definitions) to and from the broker core's [`Request`]/[`Event`].

use oracle_ctrader::proto::{self as pb, Envelope, Payload};

use crate::bars::{PeriodExt, Trendbar};
use crate::msg::*;

/// A frame body that is not a `ProtoMessage` at all (the connection must be reset).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GarbageFrame(pub String);

/// Decodes one frame body into (clientMsgId, request). An undecodable envelope is an error (the
/// stream is garbage); a known payload type whose payload does not decode is
/// [`Request::Malformed`]; a payload type the sim does not serve is [`Request::Unsupported`].
pub fn decode_request(body: &[u8]) -> Result<(Option<String>, Request), GarbageFrame> {
    use prost::Message as _;
    let msg = pb::ProtoMessage::decode(body)
        .map_err(|e| GarbageFrame(format!("not a ProtoMessage: {e}")))?;
    let cmid = msg.client_msg_id.clone();
    let pt = msg.payload_type;
    let payload = match Payload::decode(&msg) {
        Ok(p) => p,
        Err(e) => {
            return Ok((
                cmid,
                Request::Malformed {
                    reason: e.to_string(),
                },
            ));
        }
    };
    Ok((cmid, request_from_payload(pt, payload)))
}

fn opt_str(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

fn request_from_payload(pt: u32, payload: Payload) -> Request {
    match payload {
        Payload::HeartbeatEvent(_) => Request::Heartbeat,
        Payload::ApplicationAuthReq(m) => Request::ApplicationAuth {
            client_id: m.client_id,
            client_secret: m.client_secret,
        },
        Payload::AccountAuthReq(m) => Request::AccountAuth {
            account_id: m.ctid_trader_account_id,
            access_token: m.access_token,
        },
        Payload::GetAccountListByAccessTokenReq(m) => Request::AccountListByToken {
            access_token: m.access_token,
        },
        Payload::RefreshTokenReq(m) => Request::RefreshToken {
            refresh_token: m.refresh_token,
        },
        Payload::VersionReq(_) => Request::Version,
        Payload::AssetListReq(m) => Request::AssetList {
            account_id: m.ctid_trader_account_id,
        },
        Payload::SymbolsListReq(m) => Request::SymbolsList {
            account_id: m.ctid_trader_account_id,
        },
        Payload::SymbolByIdReq(m) => Request::SymbolById {
            account_id: m.ctid_trader_account_id,
            symbol_ids: m.symbol_id,
        },
        Payload::SymbolsForConversionReq(m) => Request::SymbolsForConversion {
            account_id: m.ctid_trader_account_id,
            first_asset_id: m.first_asset_id,
            last_asset_id: m.last_asset_id,
        },
        Payload::TraderReq(m) => Request::Trader {
            account_id: m.ctid_trader_account_id,
        },
        Payload::ReconcileReq(m) => Request::Reconcile {
            account_id: m.ctid_trader_account_id,
        },
        Payload::SubscribeSpotsReq(m) => Request::SubscribeSpots {
            account_id: m.ctid_trader_account_id,
            symbol_ids: m.symbol_id,
            with_timestamp: m.subscribe_to_spot_timestamp.unwrap_or(false),
        },
        Payload::UnsubscribeSpotsReq(m) => Request::UnsubscribeSpots {
            account_id: m.ctid_trader_account_id,
            symbol_ids: m.symbol_id,
        },
        Payload::SubscribeLiveTrendbarReq(m) => Request::SubscribeLiveTrendbar {
            account_id: m.ctid_trader_account_id,
            symbol_id: m.symbol_id,
            period: m.period,
        },
        Payload::UnsubscribeLiveTrendbarReq(m) => Request::UnsubscribeLiveTrendbar {
            account_id: m.ctid_trader_account_id,
            symbol_id: m.symbol_id,
            period: m.period,
        },
        Payload::GetTrendbarsReq(m) => Request::GetTrendbars {
            account_id: m.ctid_trader_account_id,
            symbol_id: m.symbol_id,
            period: m.period,
            from_ms: m.from_timestamp,
            to_ms: m.to_timestamp,
            count: m.count,
        },
        Payload::GetTickDataReq(m) => {
            if m.r#type != 1 && m.r#type != 2 {
                return Request::Malformed {
                    reason: format!(
                        "GetTickDataReq.type {} is neither BID (1) nor ASK (2)",
                        m.r#type
                    ),
                };
            }
            Request::GetTickData {
                account_id: m.ctid_trader_account_id,
                symbol_id: m.symbol_id,
                ask: m.r#type == 2,
                from_ms: m.from_timestamp,
                to_ms: m.to_timestamp,
            }
        }
        Payload::NewOrderReq(m) => {
            let order_type = match m.order_type {
                1 => OrderType::Market,
                2 => OrderType::Limit,
                3 => OrderType::Stop,
                5 => OrderType::MarketRange,
                6 => OrderType::StopLimit,
                t => {
                    return Request::Malformed {
                        reason: format!("NewOrderReq.orderType {t} is not valid for a new order"),
                    };
                }
            };
            let side = match m.trade_side {
                1 => Side::Buy,
                2 => Side::Sell,
                s => {
                    return Request::Malformed {
                        reason: format!(
                            "NewOrderReq.tradeSide {s} is neither BUY (1) nor SELL (2)"
                        ),
                    };
                }
            };
            Request::NewOrder(NewOrder {
                account_id: m.ctid_trader_account_id,
                symbol_id: m.symbol_id,
                order_type,
                side,
                volume: m.volume,
                stop_loss: m.stop_loss,
                take_profit: m.take_profit,
                relative_stop_loss: m.relative_stop_loss,
                relative_take_profit: m.relative_take_profit,
                comment: opt_str(m.comment),
                base_slippage_price: m.base_slippage_price,
                slippage_in_points: m.slippage_in_points,
                label: opt_str(m.label),
                position_id: m.position_id,
                client_order_id: opt_str(m.client_order_id),
            })
        }
        Payload::ClosePositionReq(m) => Request::ClosePosition {
            account_id: m.ctid_trader_account_id,
            position_id: m.position_id,
            volume: m.volume,
        },
        Payload::DealListReq(m) => Request::DealList {
            account_id: m.ctid_trader_account_id,
            from_ms: m.from_timestamp,
            to_ms: m.to_timestamp,
            max_rows: m.max_rows,
        },
        Payload::GetPositionUnrealizedPnLReq(m) => Request::UnrealizedPnl {
            account_id: m.ctid_trader_account_id,
        },
        Payload::ExpectedMarginReq(m) => Request::ExpectedMargin {
            account_id: m.ctid_trader_account_id,
            symbol_id: m.symbol_id,
            volumes: m.volume,
        },
        Payload::OrderDetailsReq(m) => Request::OrderDetails {
            account_id: m.ctid_trader_account_id,
            order_id: m.order_id,
        },
        Payload::OrderListReq(m) => Request::OrderList {
            account_id: m.ctid_trader_account_id,
            from_ms: m.from_timestamp,
            to_ms: m.to_timestamp,
        },
        Payload::DealListByPositionIdReq(m) => Request::DealListByPositionId {
            account_id: m.ctid_trader_account_id,
            position_id: m.position_id,
            from_ms: m.from_timestamp,
            to_ms: m.to_timestamp,
        },
        Payload::AccountLogoutReq(m) => Request::AccountLogout {
            account_id: m.ctid_trader_account_id,
        },
        Payload::Unknown { payload_type, .. } => Request::Unsupported {
            payload_type,
            name: None,
        },
        other => Request::Unsupported {
            payload_type: pt,
            name: Some(other.name()),
        },
    }
}

fn trendbar(t: &Trendbar) -> pb::ProtoOaTrendbar {
    pb::ProtoOaTrendbar {
        volume: t.volume,
        period: Some(t.period.number()),
        low: Some(t.low),
        delta_open: Some(t.delta_open),
        delta_close: Some(t.delta_close),
        delta_high: Some(t.delta_high),
        utc_timestamp_in_minutes: Some(t.utc_minutes),
    }
}

fn trade_data(t: &TradeData) -> pb::ProtoOaTradeData {
    pb::ProtoOaTradeData {
        symbol_id: t.symbol_id,
        volume: t.volume,
        trade_side: t.side as i32,
        open_timestamp: Some(t.open_ms),
        label: t.label.clone(),
        comment: t.comment.clone(),
        close_timestamp: t.close_ms.map(|c| c.max(0) as u64),
        ..Default::default()
    }
}

fn position(p: &PositionInfo) -> pb::ProtoOaPosition {
    let priced = p.status != PositionStatus::Created;
    pb::ProtoOaPosition {
        position_id: p.id,
        trade_data: trade_data(&p.trade),
        position_status: p.status as i32,
        swap: 0,
        price: priced.then_some(p.price),
        stop_loss: p.stop_loss,
        take_profit: p.take_profit,
        utc_last_update_timestamp: Some(p.last_update_ms),
        commission: Some(p.commission),
        margin_rate: priced.then_some(p.margin_rate),
        used_margin: Some(p.used_margin),
        money_digits: Some(2),
        ..Default::default()
    }
}

fn order(o: &OrderInfo) -> pb::ProtoOaOrder {
    pb::ProtoOaOrder {
        order_id: o.id,
        trade_data: trade_data(&o.trade),
        order_type: o.order_type as i32,
        order_status: o.status as i32,
        execution_price: o.execution_price,
        executed_volume: Some(o.executed_volume),
        utc_last_update_timestamp: Some(o.last_update_ms),
        base_slippage_price: o.base_slippage_price,
        slippage_in_points: o.slippage_in_points,
        closing_order: Some(o.closing_order),
        client_order_id: o.client_order_id.clone(),
        time_in_force: Some(3), // IMMEDIATE_OR_CANCEL: market orders
        position_id: Some(o.position_id),
        relative_stop_loss: o.relative_stop_loss,
        relative_take_profit: o.relative_take_profit,
        ..Default::default()
    }
}

fn deal(d: &DealInfo) -> pb::ProtoOaDeal {
    pb::ProtoOaDeal {
        deal_id: d.id,
        order_id: d.order_id,
        position_id: d.position_id,
        volume: d.volume,
        filled_volume: d.filled_volume,
        symbol_id: d.symbol_id,
        create_timestamp: d.create_ms,
        execution_timestamp: d.execution_ms,
        utc_last_update_timestamp: Some(d.execution_ms),
        execution_price: Some(d.execution_price),
        trade_side: d.side as i32,
        deal_status: 2, // FILLED
        margin_rate: Some(d.margin_rate),
        commission: Some(d.commission),
        close_position_detail: d.close.as_ref().map(|c| pb::ProtoOaClosePositionDetail {
            entry_price: c.entry_price,
            gross_profit: c.gross_profit,
            swap: c.swap,
            commission: c.commission,
            balance: c.balance,
            quote_to_deposit_conversion_rate: Some(c.quote_to_deposit),
            closed_volume: Some(c.closed_volume),
            balance_version: Some(c.balance_version),
            money_digits: Some(2),
            ..Default::default()
        }),
        money_digits: Some(2),
        ..Default::default()
    }
}

fn light(s: &LightSymbol) -> pb::ProtoOaLightSymbol {
    pb::ProtoOaLightSymbol {
        symbol_id: s.id,
        symbol_name: Some(s.name.clone()),
        enabled: Some(true),
        base_asset_id: Some(s.base_asset_id),
        quote_asset_id: Some(s.quote_asset_id),
        symbol_category_id: Some(1),
        description: Some(s.description.clone()),
        ..Default::default()
    }
}

/// Trading hours of a symbol: its hours (`--calendar`; around the clock by default) while it
/// has data; none once its data is exhausted.
fn schedule(s: &SymbolInfo) -> Vec<pb::ProtoOaInterval> {
    if s.tradable {
        s.hours
            .schedule
            .iter()
            .map(|&(start_second, end_second)| pb::ProtoOaInterval {
                start_second,
                end_second,
            })
            .collect()
    } else {
        Vec::new()
    }
}

/// A symbol's holidays (`ProtoOAHoliday`).
fn holidays(s: &SymbolInfo) -> Vec<pb::ProtoOaHoliday> {
    s.hours
        .holidays
        .iter()
        .enumerate()
        .map(|(i, h)| pb::ProtoOaHoliday {
            holiday_id: i as i64 + 1,
            name: h.name.clone(),
            description: None,
            schedule_time_zone: h.time_zone.clone(),
            holiday_date: h.date_days,
            is_recurring: h.recurring,
            start_second: h.start_second,
            end_second: h.end_second,
        })
        .collect()
}

/// `ProtoOASymbolChangedEvent`'s payload type.
pub const SYMBOL_CHANGED_EVENT: u32 = 2120;

/// `ProtoOATradingMode`: ENABLED (0) while the symbol has data, else
/// DISABLED_WITHOUT_PENDINGS_EXECUTION (1).
fn trading_mode(tradable: bool) -> i32 {
    if tradable { 0 } else { 1 }
}

/// The Open API payload for an event.
#[allow(deprecated)] // GetTrendbarsRes.timestamp: deprecated in 91, required by the Python SDK 0.9.2
pub fn payload_for(event: &Event) -> Payload {
    match event {
        Event::Heartbeat => pb::ProtoHeartbeatEvent::default().into(),
        Event::Error {
            code,
            description,
            account_id,
            common,
        } => {
            if *common {
                pb::ProtoErrorRes {
                    error_code: code.name().into(),
                    description: Some(description.clone()),
                    ..Default::default()
                }
                .into()
            } else {
                pb::ProtoOaErrorRes {
                    ctid_trader_account_id: *account_id,
                    error_code: code.name().into(),
                    description: Some(description.clone()),
                    ..Default::default()
                }
                .into()
            }
        }
        Event::Refused {
            code,
            description,
            account_id,
            retry_after_s,
            maintenance_end_ms,
        } => pb::ProtoOaErrorRes {
            ctid_trader_account_id: *account_id,
            error_code: code.name().into(),
            description: Some(description.clone()),
            maintenance_end_timestamp: *maintenance_end_ms,
            retry_after: *retry_after_s,
            ..Default::default()
        }
        .into(),
        Event::ApplicationAuthRes => pb::ProtoOaApplicationAuthRes::default().into(),
        Event::AccountAuthRes { account_id } => pb::ProtoOaAccountAuthRes {
            ctid_trader_account_id: *account_id,
            ..Default::default()
        }
        .into(),
        Event::AccountList {
            access_token,
            scope,
            accounts,
        } => pb::ProtoOaGetAccountListByAccessTokenRes {
            access_token: access_token.clone(),
            permission_scope: Some(*scope as i32),
            ctid_trader_account: accounts
                .iter()
                .map(|a| pb::ProtoOaCtidTraderAccount {
                    ctid_trader_account_id: a.account_id.max(0) as u64,
                    is_live: Some(a.is_live),
                    trader_login: Some(a.trader_login),
                    broker_title_short: Some(a.broker.clone()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
        .into(),
        Event::RefreshTokenRes {
            access_token,
            refresh_token,
            expires_in_s,
        } => pb::ProtoOaRefreshTokenRes {
            access_token: access_token.clone(),
            token_type: "bearer".into(),
            expires_in: *expires_in_s,
            refresh_token: refresh_token.clone(),
            ..Default::default()
        }
        .into(),
        Event::VersionRes { version } => pb::ProtoOaVersionRes {
            version: version.clone(),
            ..Default::default()
        }
        .into(),
        Event::AssetList { account_id, assets } => pb::ProtoOaAssetListRes {
            ctid_trader_account_id: *account_id,
            asset: assets
                .iter()
                .map(|a| pb::ProtoOaAsset {
                    asset_id: a.id,
                    name: a.name.clone(),
                    display_name: Some(a.name.clone()),
                    digits: Some(a.digits),
                })
                .collect(),
            ..Default::default()
        }
        .into(),
        Event::SymbolsList {
            account_id,
            symbols,
        } => pb::ProtoOaSymbolsListRes {
            ctid_trader_account_id: *account_id,
            symbol: symbols.iter().map(light).collect(),
            ..Default::default()
        }
        .into(),
        Event::SymbolById {
            account_id,
            symbols,
        } => pb::ProtoOaSymbolByIdRes {
            ctid_trader_account_id: *account_id,
            symbol: symbols
                .iter()
                .map(|s| pb::ProtoOaSymbol {
                    symbol_id: s.id,
                    digits: s.digits,
                    pip_position: s.pip_position,
                    enable_short_selling: Some(true),
                    max_volume: Some(s.max_volume),
                    min_volume: Some(s.min_volume),
                    step_volume: Some(s.step_volume),
                    schedule: schedule(s),
                    holiday: holidays(s),
                    commission_type: Some(2), // USD_PER_LOT
                    schedule_time_zone: Some(s.hours.time_zone.clone()),
                    trading_mode: Some(s.trading_mode.unwrap_or_else(|| trading_mode(s.tradable))),
                    lot_size: Some(s.lot_size),
                    precise_trading_commission_rate: Some(s.precise_commission_rate),
                    swap_long: Some(0.0),
                    swap_short: Some(0.0),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
        .into(),
        Event::SymbolChanged {
            account_id,
            symbol_ids,
        } => {
            // No message type for it in the generated code (release 91): encoded by hand,
            // `ctidTraderAccountId` = 2, `repeated int64 symbolId` = 3.
            let mut payload = Vec::new();
            prost::encoding::int64::encode(2, account_id, &mut payload);
            prost::encoding::int64::encode_repeated(3, symbol_ids, &mut payload);
            Payload::Unknown {
                payload_type: SYMBOL_CHANGED_EVENT,
                payload,
            }
        }
        Event::SymbolsForConversion {
            account_id,
            symbols,
        } => pb::ProtoOaSymbolsForConversionRes {
            ctid_trader_account_id: *account_id,
            symbol: symbols.iter().map(light).collect(),
            ..Default::default()
        }
        .into(),
        Event::Trader { account_id, trader } => pb::ProtoOaTraderRes {
            ctid_trader_account_id: *account_id,
            trader: pb::ProtoOaTrader {
                ctid_trader_account_id: trader.account_id,
                balance: trader.balance,
                balance_version: Some(trader.balance_version),
                access_rights: Some(0), // FULL_ACCESS
                deposit_asset_id: trader.deposit_asset_id,
                swap_free: Some(false),
                leverage_in_cents: Some(trader.leverage_in_cents),
                total_margin_calculation_type: Some(1), // SUM
                max_leverage: Some(trader.leverage_in_cents / 100),
                trader_login: Some(trader.trader_login),
                account_type: Some(0), // HEDGED
                broker_name: Some(trader.broker_name.clone()),
                registration_timestamp: Some(trader.registration_ms),
                money_digits: Some(trader.money_digits),
                ..Default::default()
            },
            ..Default::default()
        }
        .into(),
        Event::Reconcile {
            account_id,
            positions,
            orders,
        } => pb::ProtoOaReconcileRes {
            ctid_trader_account_id: *account_id,
            position: positions.iter().map(position).collect(),
            order: orders.iter().map(order).collect(),
            ..Default::default()
        }
        .into(),
        Event::SubscribeSpotsRes { account_id } => pb::ProtoOaSubscribeSpotsRes {
            ctid_trader_account_id: *account_id,
            ..Default::default()
        }
        .into(),
        Event::UnsubscribeSpotsRes { account_id } => pb::ProtoOaUnsubscribeSpotsRes {
            ctid_trader_account_id: *account_id,
            ..Default::default()
        }
        .into(),
        Event::SubscribeLiveTrendbarRes { account_id } => pb::ProtoOaSubscribeLiveTrendbarRes {
            ctid_trader_account_id: *account_id,
            ..Default::default()
        }
        .into(),
        Event::UnsubscribeLiveTrendbarRes { account_id } => pb::ProtoOaUnsubscribeLiveTrendbarRes {
            ctid_trader_account_id: *account_id,
            ..Default::default()
        }
        .into(),
        Event::Spot {
            account_id,
            symbol_id,
            bid,
            ask,
            trendbars,
            timestamp_ms,
            closed_bars: _,
        } => pb::ProtoOaSpotEvent {
            ctid_trader_account_id: *account_id,
            symbol_id: *symbol_id,
            bid: *bid,
            ask: *ask,
            trendbar: trendbars.iter().map(trendbar).collect(),
            timestamp: *timestamp_ms,
            ..Default::default()
        }
        .into(),
        Event::Trendbars {
            account_id,
            symbol_id,
            period,
            timestamp_ms,
            bars,
            has_more,
        } => pb::ProtoOaGetTrendbarsRes {
            ctid_trader_account_id: *account_id,
            period: period.number(),
            timestamp: Some(*timestamp_ms),
            trendbar: bars.iter().map(trendbar).collect(),
            symbol_id: Some(*symbol_id),
            has_more: Some(*has_more),
            ..Default::default()
        }
        .into(),
        Event::TickData {
            account_id,
            ticks,
            has_more,
        } => pb::ProtoOaGetTickDataRes {
            ctid_trader_account_id: *account_id,
            tick_data: ticks
                .iter()
                .map(|(t, p)| pb::ProtoOaTickData {
                    timestamp: *t,
                    tick: *p,
                })
                .collect(),
            has_more: *has_more,
            ..Default::default()
        }
        .into(),
        Event::Execution {
            account_id,
            exec_type,
            position: pos,
            order: ord,
            deal: dl,
            error_code,
        } => pb::ProtoOaExecutionEvent {
            ctid_trader_account_id: *account_id,
            execution_type: *exec_type as i32,
            position: pos.as_ref().map(position),
            order: ord.as_ref().map(order),
            deal: dl.as_ref().map(deal),
            error_code: error_code.map(|c| c.name().to_string()),
            ..Default::default()
        }
        .into(),
        Event::OrderError {
            account_id,
            code,
            order_id,
            position_id,
            description,
        } => pb::ProtoOaOrderErrorEvent {
            ctid_trader_account_id: *account_id,
            error_code: code.name().into(),
            order_id: *order_id,
            position_id: *position_id,
            description: Some(description.clone()),
            ..Default::default()
        }
        .into(),
        Event::DealList {
            account_id,
            deals,
            has_more,
        } => pb::ProtoOaDealListRes {
            ctid_trader_account_id: *account_id,
            deal: deals.iter().map(deal).collect(),
            has_more: *has_more,
            ..Default::default()
        }
        .into(),
        Event::UnrealizedPnl {
            account_id,
            items,
            money_digits,
        } => pb::ProtoOaGetPositionUnrealizedPnLRes {
            ctid_trader_account_id: *account_id,
            position_unrealized_pn_l: items
                .iter()
                .map(|(id, g, n)| pb::ProtoOaPositionUnrealizedPnL {
                    position_id: *id,
                    gross_unrealized_pn_l: *g,
                    net_unrealized_pn_l: *n,
                })
                .collect(),
            money_digits: *money_digits,
            ..Default::default()
        }
        .into(),
        Event::ExpectedMargin {
            account_id,
            margins,
            money_digits,
        } => pb::ProtoOaExpectedMarginRes {
            ctid_trader_account_id: *account_id,
            margin: margins
                .iter()
                .map(|(v, b, s)| pb::ProtoOaExpectedMargin {
                    volume: *v,
                    buy_margin: *b,
                    sell_margin: *s,
                })
                .collect(),
            money_digits: Some(*money_digits),
            ..Default::default()
        }
        .into(),
        Event::OrderDetails {
            account_id,
            order: o,
            deals,
        } => pb::ProtoOaOrderDetailsRes {
            ctid_trader_account_id: *account_id,
            order: order(o),
            deal: deals.iter().map(deal).collect(),
            ..Default::default()
        }
        .into(),
        Event::OrderList {
            account_id,
            orders,
            has_more,
        } => pb::ProtoOaOrderListRes {
            ctid_trader_account_id: *account_id,
            order: orders.iter().map(order).collect(),
            has_more: *has_more,
            ..Default::default()
        }
        .into(),
        Event::DealListByPositionId {
            account_id,
            deals,
            has_more,
        } => pb::ProtoOaDealListByPositionIdRes {
            ctid_trader_account_id: *account_id,
            deal: deals.iter().map(deal).collect(),
            has_more: *has_more,
            ..Default::default()
        }
        .into(),
        Event::AccountLogoutRes { account_id } => pb::ProtoOaAccountLogoutRes {
            ctid_trader_account_id: *account_id,
            ..Default::default()
        }
        .into(),
        Event::TokenInvalidated {
            account_ids,
            reason,
        } => pb::ProtoOaAccountsTokenInvalidatedEvent {
            ctid_trader_account_ids: account_ids.clone(),
            reason: Some(reason.clone()),
            ..Default::default()
        }
        .into(),
        Event::ClientDisconnect { reason } => pb::ProtoOaClientDisconnectEvent {
            reason: Some(reason.clone()),
            ..Default::default()
        }
        .into(),
    }
}

/// The frame bytes (length prefix included) for an event.
pub fn encode_event(client_msg_id: Option<String>, event: &Event) -> Vec<u8> {
    oracle_ctrader::frame::encode_envelope(&Envelope::new(payload_for(event), client_msg_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn requests_decode_and_unknowns_are_unsupported() {
        let env = Envelope::new(
            pb::ProtoOaApplicationAuthReq {
                client_id: "a".into(),
                client_secret: "b".into(),
                ..Default::default()
            },
            Some("m1".into()),
        );
        let (cmid, req) = decode_request(&env.encode_to_vec()).unwrap();
        assert_eq!(cmid.as_deref(), Some("m1"));
        assert_eq!(
            req,
            Request::ApplicationAuth {
                client_id: "a".into(),
                client_secret: "b".into()
            }
        );
        let unknown = pb::ProtoMessage {
            payload_type: 9999,
            payload: Some(vec![]),
            client_msg_id: None,
        }
        .encode_to_vec();
        assert_eq!(
            decode_request(&unknown).unwrap().1,
            Request::Unsupported {
                payload_type: 9999,
                name: None
            }
        );
        // a server→client message sent by a client
        let env = Envelope::new(
            pb::ProtoOaVersionRes {
                version: "x".into(),
                ..Default::default()
            },
            None,
        );
        assert!(matches!(
            decode_request(&env.encode_to_vec()).unwrap().1,
            Request::Unsupported {
                payload_type: 2105,
                ..
            }
        ));
        assert!(decode_request(&[0xff, 0xff, 0x01]).is_err());
        let bad_payload = pb::ProtoMessage {
            payload_type: 2100,
            payload: Some(vec![0xff, 0xff]),
            client_msg_id: None,
        }
        .encode_to_vec();
        assert!(matches!(
            decode_request(&bad_payload).unwrap().1,
            Request::Malformed { .. }
        ));
    }

    #[test]
    fn error_channels() {
        let common = payload_for(&Event::Error {
            code: ErrorCode::FrameTooLong,
            description: "x".into(),
            account_id: None,
            common: true,
        });
        assert_eq!(common.payload_type(), 50);
        let oa = payload_for(&Event::Error {
            code: ErrorCode::ChClientAuthFailure,
            description: "x".into(),
            account_id: None,
            common: false,
        });
        assert_eq!(oa.payload_type(), 2142);
        assert_eq!(oa.error_code().unwrap().as_str(), "CH_CLIENT_AUTH_FAILURE");
    }

    #[test]
    fn a_symbol_with_no_data_left_has_no_trading_hours_and_trading_disabled() {
        let info = |tradable| SymbolInfo {
            id: 1,
            digits: 5,
            pip_position: 4,
            lot_size: 10_000_000,
            min_volume: 100_000,
            step_volume: 100_000,
            max_volume: 10_000_000_000,
            precise_commission_rate: 350_000_000,
            tradable,
            trading_mode: None,
            hours: crate::calendar::SymbolHours::always_open(),
        };
        let sym = |tradable| {
            let p = payload_for(&Event::SymbolById {
                account_id: 1001,
                symbols: vec![info(tradable)],
            });
            let Payload::SymbolByIdRes(res) = p else {
                panic!("not a SymbolByIdRes: {p:?}")
            };
            res.symbol.into_iter().next().expect("one symbol")
        };
        let open = sym(true);
        assert_eq!(open.trading_mode, Some(0));
        assert_eq!(open.schedule.len(), 1);
        let closed = sym(false);
        assert_eq!(
            closed.trading_mode,
            Some(1),
            "DISABLED_WITHOUT_PENDINGS_EXECUTION"
        );
        assert!(closed.schedule.is_empty(), "no trading hours");
        // A mode set by the test hook or the fault wins over the data's.
        let p = payload_for(&Event::SymbolById {
            account_id: 1001,
            symbols: vec![SymbolInfo {
                trading_mode: Some(3),
                ..info(true)
            }],
        });
        let Payload::SymbolByIdRes(res) = p else {
            panic!("not a SymbolByIdRes: {p:?}")
        };
        assert_eq!(res.symbol[0].trading_mode, Some(3), "CLOSE_ONLY_MODE");
    }

    #[test]
    fn symbol_changed_event_is_payload_2120_with_the_account_and_symbol_ids() {
        let p = payload_for(&Event::SymbolChanged {
            account_id: 1001,
            symbol_ids: vec![2, 3],
        });
        assert_eq!(p.payload_type(), 2120);
        let bytes = p.encode_payload();
        let mut buf = bytes.as_slice();
        let mut fields = Vec::new();
        while !buf.is_empty() {
            let (tag, _) = prost::encoding::decode_key(&mut buf).unwrap();
            fields.push((tag, prost::encoding::decode_varint(&mut buf).unwrap()));
        }
        assert_eq!(fields, [(2, 1001), (3, 2), (3, 3)]);
    }
}
