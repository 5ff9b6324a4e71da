-- Orders wxrecon placed at WeChat Pay (JSAPI prepay / unifiedorder). The request is stored the first
-- time, so that every retry resends identical parameters: WeChat Pay accepts a re-entry only when they
-- match, and time_expire can be set only once. The prepay_id is kept for its two hours of validity.
CREATE TABLE wxrecon.prepay_requests (
    mchid        text        NOT NULL,
    out_trade_no text        NOT NULL,
    api_version  text        NOT NULL CHECK (api_version IN ('v3', 'v2')),
    appid        text        NOT NULL,
    request      text        NOT NULL,   -- v3: the JSON body; v2: the XML of the signed business fields
    prepay_id    text,
    prepaid_at   timestamptz,
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mchid, out_trade_no),
    FOREIGN KEY (mchid, out_trade_no) REFERENCES wxrecon.orders (mchid, out_trade_no)
);
