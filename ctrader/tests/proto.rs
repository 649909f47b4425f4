//! Envelope/payload helpers: typed encode/decode, unknown payload types, redaction.

use oracle_ctrader::proto::*;

#[test]
fn payload_type_numbers_match_spotware() {
    assert_eq!(ProtoHeartbeatEvent::PAYLOAD_TYPE, 51);
    assert_eq!(ProtoErrorRes::PAYLOAD_TYPE, 50);
    assert_eq!(ProtoOaApplicationAuthReq::PAYLOAD_TYPE, 2100);
    assert_eq!(ProtoOaAccountAuthReq::PAYLOAD_TYPE, 2102);
    assert_eq!(ProtoOaGetAccountListByAccessTokenReq::PAYLOAD_TYPE, 2149);
    assert_eq!(ProtoOaRefreshTokenReq::PAYLOAD_TYPE, 2173);
    assert_eq!(ProtoOaAccountsTokenInvalidatedEvent::PAYLOAD_TYPE, 2147);
    assert_eq!(ProtoOaClientDisconnectEvent::PAYLOAD_TYPE, 2148);
    assert_eq!(ProtoOaAccountDisconnectEvent::PAYLOAD_TYPE, 2164);
    assert_eq!(ProtoOaOrderErrorEvent::PAYLOAD_TYPE, 2132);
    assert_eq!(ProtoOaGetTrendbarsReq::PAYLOAD_TYPE, 2137);
    assert_eq!(ProtoOaSubscribeLiveTrendbarRes::PAYLOAD_TYPE, 2165);
    assert_eq!(ProtoOaGetPositionUnrealizedPnLRes::PAYLOAD_TYPE, 2188);
    assert_eq!(ProtoOaErrorCode::ChClientAuthFailure as i32, 101);
    assert_eq!(ProtoOaErrorCode::RequestFrequencyExceeded as i32, 108);
    assert_eq!(ProtoErrorCode::FrameTooLong as i32, 8);
    assert_eq!(ProtoOaExecutionType::OrderFilled as i32, 3);
    assert_eq!(ProtoOaOrderType::MarketRange as i32, 5);
}

#[test]
fn envelope_roundtrip_and_unknown() {
    let spot = ProtoOaSpotEvent {
        ctid_trader_account_id: 7,
        symbol_id: 1,
        bid: Some(108_542),
        ask: Some(108_544),
        ..Default::default()
    };
    let env = Envelope::new(spot.clone(), Some("m1".into()));
    let bytes = env.encode_to_vec();
    let back = Envelope::decode(&bytes).unwrap();
    assert_eq!(back, env);
    assert_eq!(back.payload, Payload::SpotEvent(spot));
    assert_eq!(back.payload.payload_type(), 2131);

    let unknown = ProtoMessage {
        payload_type: 2189,
        payload: Some(vec![8, 1]),
        client_msg_id: None,
    };
    let p = Payload::decode(&unknown).unwrap();
    assert_eq!(
        p,
        Payload::Unknown {
            payload_type: 2189,
            payload: vec![8, 1]
        }
    );
    // Garbage payload for a known type is an error, not a panic.
    let bad = ProtoMessage {
        payload_type: 2131,
        payload: Some(vec![0xff; 3]),
        client_msg_id: None,
    };
    assert!(Payload::decode(&bad).is_err());
    assert!(Envelope::decode(&[0xff, 0xff, 0xff]).is_err());
}

#[test]
fn error_codes_parse() {
    assert_eq!(
        ErrorCode::parse("CH_CLIENT_AUTH_FAILURE"),
        ErrorCode::OpenApi(ProtoOaErrorCode::ChClientAuthFailure)
    );
    assert_eq!(
        ErrorCode::parse("FRAME_TOO_LONG"),
        ErrorCode::Common(ProtoErrorCode::FrameTooLong)
    );
    assert_eq!(
        ErrorCode::parse("NEW_THING"),
        ErrorCode::Other("NEW_THING".into())
    );
}

#[test]
fn secrets_are_redacted_in_debug() {
    let req = ProtoOaApplicationAuthReq {
        payload_type: None,
        client_id: "cid-XYZ".into(),
        client_secret: "s3cr3t-ABC".into(),
    };
    let acc = ProtoOaAccountAuthReq {
        payload_type: None,
        ctid_trader_account_id: 1,
        access_token: "tok-DEF".into(),
    };
    let rt = ProtoOaRefreshTokenRes {
        access_token: "tok-GHI".into(),
        refresh_token: "ref-JKL".into(),
        ..Default::default()
    };
    let env = Envelope::new(req.clone(), None);
    let all = format!(
        "{req:?} {acc:?} {rt:?} {env:?} {:?}",
        env.to_proto_message()
    );
    for s in ["cid-XYZ", "s3cr3t-ABC", "tok-DEF", "tok-GHI", "ref-JKL"] {
        assert!(!all.contains(s), "{s} leaked in {all}");
    }
}

#[test]
fn release_91_lookups_have_their_payload_types_and_roundtrip() {
    assert_eq!(ProtoOaExpectedMarginReq::PAYLOAD_TYPE, 2139);
    assert_eq!(ProtoOaExpectedMarginRes::PAYLOAD_TYPE, 2140);
    assert_eq!(ProtoOaAccountLogoutReq::PAYLOAD_TYPE, 2162);
    assert_eq!(ProtoOaAccountLogoutRes::PAYLOAD_TYPE, 2163);
    assert_eq!(ProtoOaOrderListReq::PAYLOAD_TYPE, 2175);
    assert_eq!(ProtoOaOrderListRes::PAYLOAD_TYPE, 2176);
    assert_eq!(ProtoOaDealListByPositionIdReq::PAYLOAD_TYPE, 2179);
    assert_eq!(ProtoOaDealListByPositionIdRes::PAYLOAD_TYPE, 2180);
    assert_eq!(ProtoOaOrderDetailsReq::PAYLOAD_TYPE, 2181);
    assert_eq!(ProtoOaOrderDetailsRes::PAYLOAD_TYPE, 2182);
    let res = ProtoOaExpectedMarginRes {
        ctid_trader_account_id: 7,
        margin: vec![ProtoOaExpectedMargin {
            volume: 100_000,
            buy_margin: 3_333,
            sell_margin: 3_332,
        }],
        money_digits: Some(2),
        ..Default::default()
    };
    let env = Envelope::new(res.clone(), Some("m".into()));
    let back = Envelope::decode(&env.encode_to_vec()).unwrap();
    assert_eq!(back.payload, Payload::ExpectedMarginRes(res));
    let req = ProtoOaOrderListReq {
        ctid_trader_account_id: 7,
        from_timestamp: Some(0),
        to_timestamp: Some(1),
        ..Default::default()
    };
    let back = Envelope::decode(&Envelope::new(req, None).encode_to_vec()).unwrap();
    assert_eq!(back.payload, Payload::OrderListReq(req));
    let req = ProtoOaDealListByPositionIdReq {
        ctid_trader_account_id: 7,
        position_id: 9,
        ..Default::default()
    };
    let back = Envelope::decode(&Envelope::new(req, None).encode_to_vec()).unwrap();
    assert_eq!(back.payload, Payload::DealListByPositionIdReq(req));
}
