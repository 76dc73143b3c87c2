//! DeviceService as device.proto documents it: every rule of Device refused by name, lookups,
//! ordered paging, field-masked updates that open sessions see, and deletion.

use proto::v1 as pb;
use tests::client::authed;
use tonic::Code;

use super::*;

fn spool_device(id: &str) -> pb::Device {
    pb::Device {
        id: id.into(),
        display_name: "Reception MFD".into(),
        model: "Xerox AltaLink C8170".into(),
        delivery_mode: pb::DeliveryMode::SpoolFolder as i32,
        location: "Building 2, floor 3".into(),
        ..Default::default()
    }
}

fn ipp_device(id: &str, uri: &str) -> pb::Device {
    pb::Device { delivery_mode: pb::DeliveryMode::IppPush as i32, printer_uri: uri.into(), ..spool_device(id) }
}

fn valid_capabilities() -> pb::PrinterCapabilities {
    let a4 = pb::Media {
        keyword: "iso_a4_210x297mm".into(),
        display_name: "A4".into(),
        width_mm: 210.0,
        height_mm: 297.0,
        ..Default::default()
    };
    pb::PrinterCapabilities {
        media_supported: vec![a4.clone()],
        // What is loaded, with its tray and margin: imposition picks its sheet from these.
        media_ready: vec![pb::Media { source: "tray-1".into(), margin_mm: 4.0, ..a4 }],
        media_default: "iso_a4_210x297mm".into(),
        sides_supported: vec![pb::Sides::OneSided as i32],
        sides_default: pb::Sides::OneSided as i32,
        color_modes_supported: vec![pb::ColorMode::Color as i32, pb::ColorMode::Monochrome as i32],
        color_mode_default: pb::ColorMode::Color as i32,
        copies_max: 10,
        document_formats_supported: vec!["application/pdf".into()],
    }
}

async fn register(conf: &Conf, device: pb::Device) -> Result<pb::Device, tonic::Status> {
    let request = authed(OPERATOR_TOKEN, pb::RegisterDeviceRequest { device: Some(device) });
    conf.devices().register_device(request).await.map(|r| r.into_inner().device.expect("a device"))
}

async fn update(conf: &Conf, device: pb::Device, paths: &[&str]) -> Result<pb::Device, tonic::Status> {
    let mask = prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() };
    let request = authed(OPERATOR_TOKEN, pb::UpdateDeviceRequest { device: Some(device), update_mask: Some(mask) });
    conf.devices().update_device(request).await.map(|r| r.into_inner().device.expect("a device"))
}

async fn list(conf: &Conf, page_size: i32, page_token: &str) -> Result<pb::ListDevicesResponse, tonic::Status> {
    let request = authed(OPERATOR_TOKEN, pb::ListDevicesRequest { page_size, page_token: page_token.into() });
    conf.devices().list_devices(request).await.map(tonic::Response::into_inner)
}

#[tokio::test]
async fn register_device_returns_the_device_with_times_set_by_the_server() {
    let conf = Conf::start().await;
    let sent =
        pb::Device { create_time: Some(prost_types::Timestamp { seconds: 1, nanos: 0 }), ..spool_device("mfd-a") };
    let device = register(&conf, sent.clone()).await.expect("RegisterDevice");
    let created = device.create_time.expect("create_time set");
    assert!(created.seconds > 1_000_000_000, "the request's create_time is ignored: {created:?}");
    assert!(device.update_time.is_some());
    assert_eq!(
        pb::Device { create_time: None, update_time: None, ..device.clone() },
        pb::Device { create_time: None, ..sent },
        "every field as registered"
    );
    let got =
        conf.devices().get_device(authed(OPERATOR_TOKEN, pb::GetDeviceRequest { device_id: "mfd-a".into() })).await;
    assert_eq!(got.expect("GetDevice").into_inner().device, Some(device));
}

#[tokio::test]
async fn register_device_breaking_a_rule_of_device_is_invalid_argument_naming_the_field() {
    let conf = Conf::start().await;
    let pin = "ab".repeat(32);
    let caps = valid_capabilities;
    let cases: Vec<(&str, pb::Device)> = vec![
        ("id", spool_device("")),
        ("id", spool_device(&"d".repeat(65))),
        ("id", spool_device("bad id")),
        ("display_name", pb::Device { display_name: String::new(), ..spool_device("mfd-b") }),
        ("display_name", pb::Device { display_name: "n".repeat(101), ..spool_device("mfd-b") }),
        ("model", pb::Device { model: "m".repeat(101), ..spool_device("mfd-b") }),
        ("location", pb::Device { location: "l".repeat(201), ..spool_device("mfd-b") }),
        ("delivery_mode", pb::Device { delivery_mode: 0, ..spool_device("mfd-b") }),
        ("printer_uri", ipp_device("mfd-b", "")),
        ("printer_uri", pb::Device { printer_uri: "ipp://10.0.4.17:631/ipp/print".into(), ..spool_device("mfd-b") }),
        ("printer_uri", ipp_device("mfd-b", "http://10.0.4.17:631/ipp/print")),
        ("printer_uri", ipp_device("mfd-b", "ipp://10.0.4.17/ipp/print")),
        ("printer_uri", ipp_device("mfd-b", "ipp://user:secret@10.0.4.17:631/ipp/print")),
        ("printer_uri", ipp_device("mfd-b", "ipp://10.0.4.17:631/ipp/print?x=1")),
        ("printer_uri", ipp_device("mfd-b", "ipp://10.0.4.17:631/ipp/print#top")),
        ("printer_uri", ipp_device("mfd-b", &format!("ipp://10.0.4.17:631/{}", "p".repeat(1024)))),
        (
            "pinned_certificate_sha256",
            pb::Device {
                pinned_certificate_sha256: pin.clone(),
                ..ipp_device("mfd-b", "ipp://10.0.4.17:631/ipp/print")
            },
        ),
        (
            "pinned_certificate_sha256",
            pb::Device {
                pinned_certificate_sha256: pin.to_uppercase(),
                ..ipp_device("mfd-b", "ipps://mfd-3.example.net:631/ipp/print")
            },
        ),
        (
            "pinned_certificate_sha256",
            pb::Device {
                pinned_certificate_sha256: "ab".into(),
                ..ipp_device("mfd-b", "ipps://mfd-3.example.net:631/ipp/print")
            },
        ),
        (
            "copies_max",
            pb::Device {
                capabilities: Some(pb::PrinterCapabilities { copies_max: 0, ..caps() }),
                ..spool_device("mfd-b")
            },
        ),
        (
            "media_default",
            pb::Device {
                capabilities: Some(pb::PrinterCapabilities { media_default: "na_letter_8.5x11in".into(), ..caps() }),
                ..spool_device("mfd-b")
            },
        ),
        (
            "sides_default",
            pb::Device {
                capabilities: Some(pb::PrinterCapabilities {
                    sides_default: pb::Sides::TwoSidedLongEdge as i32,
                    ..caps()
                }),
                ..spool_device("mfd-b")
            },
        ),
        (
            "color_mode_default",
            pb::Device {
                capabilities: Some(pb::PrinterCapabilities {
                    color_modes_supported: vec![pb::ColorMode::Monochrome as i32],
                    ..caps()
                }),
                ..spool_device("mfd-b")
            },
        ),
        (
            "media_ready",
            pb::Device {
                capabilities: Some(pb::PrinterCapabilities {
                    media_ready: vec![pb::Media { keyword: "iso_a4_210x297mm".into(), ..Default::default() }],
                    ..caps()
                }),
                ..spool_device("mfd-b")
            },
        ),
        (
            "margin_mm",
            pb::Device {
                capabilities: Some(pb::PrinterCapabilities {
                    media_ready: vec![pb::Media { margin_mm: 45.0, ..caps().media_supported[0].clone() }],
                    ..caps()
                }),
                ..spool_device("mfd-b")
            },
        ),
        (
            "document_formats_supported",
            pb::Device {
                capabilities: Some(pb::PrinterCapabilities {
                    document_formats_supported: vec!["image/pwg-raster".into()],
                    ..caps()
                }),
                ..spool_device("mfd-b")
            },
        ),
    ];
    let mut wrong = Vec::new();
    for (n, (field, mut device)) in cases.into_iter().enumerate() {
        // A fresh id per case, so a case the server wrongly accepts cannot hide the next ones.
        if field != "id" {
            device.id = format!("mfd-rule-{n}");
        }
        match register(&conf, device.clone()).await {
            Err(s) if s.code() == Code::InvalidArgument && s.message().contains(field) => {}
            other => wrong.push(format!("{field} of {device:?}:\n  {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "each must be INVALID_ARGUMENT naming the field:\n{}", wrong.join("\n"));
    // The same device with valid values registers.
    let good = pb::Device {
        pinned_certificate_sha256: pin,
        capabilities: Some(caps()),
        ..ipp_device("mfd-b", "ipps://mfd-3.example.net:631/ipp/print")
    };
    register(&conf, good).await.expect("a valid device registers");
}

#[tokio::test]
async fn get_device_of_an_unknown_id_is_not_found_and_an_empty_id_is_invalid_argument() {
    let conf = Conf::start().await;
    let get = |id: &str| {
        let (mut client, request) = (conf.devices(), pb::GetDeviceRequest { device_id: id.into() });
        async move { client.get_device(authed(OPERATOR_TOKEN, request)).await }
    };
    expect_status(get("mfd-nobody").await, Code::NotFound, &["mfd-nobody"]);
    expect_status(get("").await, Code::InvalidArgument, &["device_id"]);
}

#[tokio::test]
async fn list_devices_pages_in_id_order_with_the_documented_page_sizes() {
    let conf = Conf::start().await;
    for id in ["mfd-e", "mfd-a", "mfd-d", "mfd-c", "mfd-b"] {
        register(&conf, spool_device(id)).await.expect("RegisterDevice");
    }
    let everything = list(&conf, 0, "").await.expect("0 = the default, 50");
    let ids: Vec<&str> = everything.devices.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["mfd-a", "mfd-b", "mfd-c", "mfd-d", "mfd-e"]);
    assert_eq!(everything.total_size, 5);
    assert!(everything.next_page_token.is_empty());
    list(&conf, 100_000, "").await.expect("a larger value is treated as 500");

    let mut paged = Vec::new();
    let mut token = String::new();
    for _ in 0..5 {
        let page = list(&conf, 2, &token).await.expect("ListDevices");
        assert!(page.devices.len() <= 2);
        assert_eq!(page.total_size, 5);
        paged.extend(page.devices.into_iter().map(|d| d.id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, ids, "the pages join into the whole list");
}

#[tokio::test]
async fn list_devices_with_a_negative_page_size_or_malformed_token_is_invalid_argument() {
    let conf = Conf::start().await;
    expect_status(list(&conf, -1, "").await, Code::InvalidArgument, &["page_size"]);
    for garbage in ["nonsense", "%%%", "AAAA"] {
        expect_status(list(&conf, 0, garbage).await, Code::InvalidArgument, &["page_token"]);
    }
}

#[tokio::test]
async fn update_device_with_an_empty_unknown_or_unchangeable_mask_is_invalid_argument() {
    let conf = Conf::start().await;
    register(&conf, spool_device("mfd-a")).await.expect("RegisterDevice");
    let mut wrong = Vec::new();
    let no_mask = pb::UpdateDeviceRequest { device: Some(spool_device("mfd-a")), update_mask: None };
    match conf.devices().update_device(authed(OPERATOR_TOKEN, no_mask)).await {
        Err(s) if s.code() == Code::InvalidArgument && s.message().contains("update_mask") => {}
        other => wrong.push(format!("no update_mask: {other:?}")),
    }
    for (path, hint) in [
        ("", "update_mask"),
        ("no_such_field", "no_such_field"),
        ("id", "id"),
        ("create_time", "create_time"),
        ("update_time", "update_time"),
    ] {
        let paths: &[&str] = if path.is_empty() { &[] } else { &[path] };
        match update(&conf, spool_device("mfd-a"), paths).await {
            Err(s) if s.code() == Code::InvalidArgument && s.message().contains(hint) => {}
            other => wrong.push(format!("update_mask {paths:?}: {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "each must be INVALID_ARGUMENT naming the mask or path:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn update_device_replaces_only_the_fields_in_the_mask_and_star_replaces_all() {
    let conf = Conf::start().await;
    let registered = register(&conf, spool_device("mfd-a")).await.expect("RegisterDevice");
    let changed = pb::Device { display_name: "Other name".into(), location: "Lobby".into(), ..spool_device("mfd-a") };
    let after = update(&conf, changed.clone(), &["location"]).await.expect("UpdateDevice");
    assert_eq!((after.location.as_str(), after.display_name.as_str()), ("Lobby", "Reception MFD"));
    assert_eq!(after.create_time, registered.create_time, "create_time never changes");
    let capabilities = Some(valid_capabilities());
    let star = pb::Device { model: String::new(), capabilities: capabilities.clone(), ..changed };
    let after = update(&conf, star, &["*"]).await.expect("UpdateDevice *");
    assert_eq!(
        (after.display_name.as_str(), after.model.as_str(), after.capabilities),
        ("Other name", "", capabilities),
        "every changeable field replaced"
    );
}

#[tokio::test]
async fn update_device_of_an_unknown_or_empty_id_is_not_found_or_invalid_argument() {
    let conf = Conf::start().await;
    expect_status(update(&conf, spool_device("mfd-nobody"), &["location"]).await, Code::NotFound, &["mfd-nobody"]);
    expect_status(update(&conf, spool_device(""), &["location"]).await, Code::InvalidArgument, &["id"]);
}

#[tokio::test]
async fn update_device_that_would_break_a_rule_is_invalid_argument_naming_the_field() {
    let conf = Conf::start().await;
    register(&conf, spool_device("mfd-a")).await.expect("RegisterDevice");
    let ipp = pb::Device { delivery_mode: pb::DeliveryMode::IppPush as i32, ..spool_device("mfd-a") };
    expect_status(update(&conf, ipp, &["delivery_mode"]).await, Code::InvalidArgument, &["printer_uri"]);
    let nameless = pb::Device { display_name: String::new(), ..spool_device("mfd-a") };
    expect_status(update(&conf, nameless, &["display_name"]).await, Code::InvalidArgument, &["display_name"]);
}

#[tokio::test]
async fn open_sessions_see_a_device_update_from_their_next_call() {
    let conf = Conf::start().await;
    register(&conf, spool_device("mfd-a")).await.expect("RegisterDevice");
    let token = conf.new_session_on("mfd-a").await;
    let caps = || {
        let (mut client, request) = (conf.print(), authed(&token, pb::GetPrinterCapabilitiesRequest {}));
        async move { client.get_printer_capabilities(request).await }
    };
    assert_eq!(caps().await.expect("capabilities").into_inner().device_display_name, "Reception MFD");
    let renamed = pb::Device { display_name: "Renamed MFD".into(), ..spool_device("mfd-a") };
    update(&conf, renamed, &["display_name"]).await.expect("UpdateDevice");
    assert_eq!(caps().await.expect("capabilities").into_inner().device_display_name, "Renamed MFD");
}

#[tokio::test]
async fn delete_device_of_an_unknown_or_empty_id_is_not_found_or_invalid_argument() {
    let conf = Conf::start().await;
    let delete = |id: &str| {
        let (mut client, request) = (conf.devices(), pb::DeleteDeviceRequest { device_id: id.into() });
        async move { client.delete_device(authed(OPERATOR_TOKEN, request)).await }
    };
    expect_status(delete("mfd-nobody").await, Code::NotFound, &["mfd-nobody"]);
    expect_status(delete("").await, Code::InvalidArgument, &["device_id"]);
}

#[tokio::test]
async fn a_deleted_device_can_no_longer_start_sessions() {
    let conf = Conf::bare(|b| b.require_registered_devices()).await;
    register(&conf, spool_device("mfd-a")).await.expect("RegisterDevice");
    conf.new_session_on("mfd-a").await;
    let delete = pb::DeleteDeviceRequest { device_id: "mfd-a".into() };
    conf.devices().delete_device(authed(OPERATOR_TOKEN, delete)).await.expect("DeleteDevice");
    let start = pb::StartSessionRequest { device_id: "mfd-a".into(), ..Default::default() };
    expect_status(conf.sessions().start_session(start).await, Code::NotFound, &["mfd-a"]);
}
