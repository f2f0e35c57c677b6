use super::*;

#[test]
fn the_default_page_passes_its_own_check() {
    MaintenancePage::default_page().check().expect("valid");
}

#[test]
fn a_page_gets_its_type_from_its_extension() {
    let page = MaintenancePage::from_file("down.HTML", b"<p>back soon</p>".to_vec()).expect("ok");
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    let page = MaintenancePage::from_file("down.txt", b"back soon".to_vec()).expect("ok");
    assert_eq!(page.content_type, "text/plain; charset=utf-8");
    let page = MaintenancePage::from_file("down.json", b"{}".to_vec()).expect("ok");
    assert_eq!(page.content_type, "application/json");
}

#[test]
fn bad_pages_are_refused_saying_why() {
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("down.png", b"x".to_vec(), ".html, .htm, .txt or .json"),
        ("down", b"x".to_vec(), ".html, .htm, .txt or .json"),
        ("down.html", Vec::new(), "empty"),
        (
            "down.html",
            vec![b'a'; MAX_PAGE_BYTES + 1],
            "at most 64 KiB",
        ),
        (
            "down.html",
            vec![b'a', 0xff, b'b'],
            "not valid UTF-8 (at byte 1)",
        ),
    ];
    for (name, body, expected) in cases {
        let error = MaintenancePage::from_file(name, body).expect_err(name);
        assert!(error.contains(expected), "{name}: {error}");
    }
    assert!(MaintenancePage::from_file("big.html", vec![b'a'; MAX_PAGE_BYTES]).is_ok());
    let odd = MaintenancePage {
        content_type: "text/html\r\nX-Evil: 1".into(),
        body: b"x".to_vec(),
    };
    assert!(odd.check().is_err());
}
