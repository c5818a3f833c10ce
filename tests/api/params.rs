//! 422: every problem with startDate/endDate in one body, and the check
//! order 401 → 403 → 422.

use crate::helpers::*;
use serde_json::{json, Value};

const GOOD_END: &str = "2024-02-01T00:00:00.000Z";

fn missing(target: &str) -> Value {
    json!({"code": "MissingRequiredParameter", "message": "Required parameter is missing.", "target": target})
}

fn invalid(target: &str) -> Value {
    json!({"code": "InvalidValue",
           "message": format!("Parameter '{target}' format is incorrect, valid format is yyyy-MM-dd'T'HH:mm:ss.fff'Z'."),
           "target": target})
}

fn not_later() -> Value {
    json!({"code": "InvalidValue", "message": "Parameter 'endDate' must be later than 'startDate'.", "target": "endDate"})
}

fn body(details: Vec<Value>) -> Value {
    json!({"error": {"code": "InvalidDownloadAnalyticsRequest", "message": "Cannot perform operation.", "details": details}})
}

async fn assert_422(app: &TestApp, bearer: &str, query: &str, details: Vec<Value>) {
    let response = app.get_download(Some(bearer), query).await;
    assert_eq!(response.status(), 422, "{query}");
    assert_eq!(json_of(response).await, body(details), "{query}");
}

async fn malformed_start_dates_are_invalid_values() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    let wrong_forms = [
        "2024-01-01",
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:00:00.0Z",
        "2024-01-01T00:00:00.00Z",
        "2024-01-01T00:00:00.0000Z",
        "2024-01-01T00:00:00.000",
        "2024-01-01T00:00:00.000%2B00:00",
        "2024-01-01T00:00:00.000-05:00",
        "2024-01-01t00:00:00.000Z",
        "2024-01-01T00:00:00.000z",
        "2024-01-01%2000:00:00.000Z",
        "%202024-01-01T00:00:00.000Z",
        "2024-01-01T00:00:00.000Z%20",
        "2023-02-29T00:00:00.000Z",
        "2024-02-30T00:00:00.000Z",
        "2024-04-31T00:00:00.000Z",
        "2024-13-01T00:00:00.000Z",
        "2024-00-01T00:00:00.000Z",
        "2024-01-00T00:00:00.000Z",
        "2024-01-01T24:00:00.000Z",
        "2024-01-01T23:60:00.000Z",
        "2024-01-01T23:59:60.000Z",
        "24-01-01T00:00:00.000Z",
        "02024-01-01T00:00:00.000Z",
        "2024/01/01T00:00:00.000Z",
        "20240101T000000.000Z",
        "2024-1-01T00:00:00.000Z",
        "1704067200000",
        "2024-01-01T00:00:00,000Z",
        "yesterday",
        "2024-01-01T00:00:00.000Z%00",
    ];
    assert!(wrong_forms.len() >= 20);
    for start in wrong_forms {
        assert_422(
            &app,
            &bearer,
            &window(start, GOOD_END),
            vec![invalid("startDate")],
        )
        .await;
        assert_422(
            &app,
            &bearer,
            &window("2024-01-01T00:00:00.000Z", start),
            vec![invalid("endDate")],
        )
        .await;
    }
}

async fn missing_empty_repeated_and_inverted_parameters() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    let start = "2024-01-01T00:00:00.000Z";
    let cases: Vec<(String, Vec<Value>)> = vec![
        (
            String::new(),
            vec![missing("startDate"), missing("endDate")],
        ),
        (format!("endDate={GOOD_END}"), vec![missing("startDate")]),
        (format!("startDate={start}"), vec![missing("endDate")]),
        (
            format!("startDate=&endDate={GOOD_END}"),
            vec![missing("startDate")],
        ),
        (
            "startDate=&endDate=".into(),
            vec![missing("startDate"), missing("endDate")],
        ),
        (
            format!("startdate={start}&ENDDATE={GOOD_END}"),
            vec![missing("startDate"), missing("endDate")],
        ),
        (
            "startDate=bad&endDate=".into(),
            vec![missing("endDate"), invalid("startDate")],
        ),
        (
            "startDate=bad&endDate=worse".into(),
            vec![invalid("startDate"), invalid("endDate")],
        ),
        (
            format!("startDate={start}&startDate={start}&endDate={GOOD_END}"),
            vec![invalid("startDate")],
        ),
        (
            format!("startDate={start}&endDate={GOOD_END}&endDate={GOOD_END}"),
            vec![invalid("endDate")],
        ),
        (
            format!("startDate={start}&endDate={start}"),
            vec![not_later()],
        ),
        (
            format!("startDate={GOOD_END}&endDate={start}"),
            vec![not_later()],
        ),
    ];
    for (query, details) in cases {
        assert_422(&app, &bearer, &query, details).await;
    }
}

async fn percent_encoded_colons_and_unknown_parameters_are_fine() {
    let app = spawn_app().await;
    let bearer = app.admin_bearer("org-a").await;
    let query = "startDate=2024-01-01T00%3A00%3A00.000Z&endDate=2024-02-01T00%3a00%3a00.000Z&foo=bar&page=2";
    let response = app.get_download(Some(&bearer), query).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"ComponentsAnalytics_20240101T000000000Z_20240201T000000000Z.csv\""
    );
}

async fn checks_run_in_order_401_then_403_then_422() {
    let app = spawn_app().await;
    let bad_query = "startDate=nope";
    let response = app.get_download(None, bad_query).await;
    assert_eq!(response.status(), 401, "no token beats bad parameters");
    assert_invalid_token(
        app.get_download(Some("Bearer x"), bad_query).await,
        "bad token beats bad parameters",
    )
    .await;
    let outsider = format!("Bearer {}", app.token("org-a", "nobody", "itwin-platform"));
    let response = app.get_download(Some(&outsider), bad_query).await;
    assert_eq!(response.status(), 403, "no permission beats bad parameters");
    assert_eq!(json_of(response).await, insufficient_permissions());
    let admin = app.admin_bearer("org-a").await;
    assert_eq!(
        app.get_download(Some(&admin), bad_query).await.status(),
        422
    );
}

crate::both_backends!(
    malformed_start_dates_are_invalid_values,
    missing_empty_repeated_and_inverted_parameters,
    percent_encoded_colons_and_unknown_parameters_are_fine,
    checks_run_in_order_401_then_403_then_422,
);
