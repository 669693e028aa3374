@testable import AuthdCore
import AuthdStore
import Foundation
import XCTest

/// `Users/List` against the real store: its pages are those of sorting every match and cutting
/// the page from them, though it keeps only a page's worth of matches while it scans.
final class UserQueryTests: DomainTestCase {
    /// `count` users `u00000`, `u00001`, ...: a name from a few, so that orders by name tie,
    /// creation times in another order than the ids, and a label on every third.
    private func insertUsers(_ count: Int) async throws -> [UserRecord] {
        var records: [UserRecord] = []
        for i in 0..<count {
            var user = UserRecord(id: String(format: "u%05d", i), createdAt: Int64(1_000 + (i * 7919) % count))
            user.email = "u\(i)@example.com"
            user.name = ["Ann", "Bob", "Cy", "Dee", "Eve"][i % 5]
            if i % 3 == 0 { user.labels = ["vip"] }
            if i % 4 == 0 { user.phone = String(format: "+1415555%04d", i) }
            records.append(user)
        }
        try await store.write { [records] w in for user in records { try w.insertUser(user) } }
        return records
    }

    private func query(_ method: String, _ attribute: String? = nil, _ values: [Any] = []) -> String {
        var object: [String: Any] = ["method": method, "values": values]
        if let attribute { object["attribute"] = attribute }
        return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    /// The page by brute force: every match sorted, the cursor's followers (or forerunners),
    /// then the offset and the limit.
    private func expectedPage(
        _ all: [UserRecord], matching: (UserRecord) -> Bool, order: (UserRecord, UserRecord) -> Bool,
        cursor: (id: String, after: Bool)?, offset: Int, limit: Int
    ) -> (ids: [String], total: Int) {
        let matches = all.filter(matching).sorted(by: order)
        var candidates = matches[...]
        if let cursor, let at = all.first(where: { $0.id == cursor.id }) {
            candidates = matches.filter { cursor.after ? order(at, $0) : order($0, at) }[...]
        }
        let page = cursor?.after == false
            ? candidates.dropLast(offset).suffix(limit) : candidates.dropFirst(offset).prefix(limit)
        return (page.map(\.id), min(matches.count, 5000))
    }

    /// Lists with `queries` and `search`, and checks the page and the total against `expectedPage`.
    private func assertListed(
        _ queries: [String], search: String = "", in all: [UserRecord], matching: (UserRecord) -> Bool,
        order: (UserRecord, UserRecord) -> Bool, cursor: (id: String, after: Bool)? = nil, offset: Int = 0, limit: Int = 25,
        _ label: String, file: StaticString = #filePath, line: UInt = #line
    ) async throws {
        let (page, total) = try await users.list(queries: queries, search: search, call: server)
        let expected = expectedPage(all, matching: matching, order: order, cursor: cursor, offset: offset, limit: limit)
        XCTAssertEqual(page.map(\.id), expected.ids, label, file: file, line: line)
        XCTAssertEqual(total, expected.total, label, file: file, line: line)
    }

    /// A list to check: its queries, which users match and in what order, and the cursor, offset
    /// and limit its page is cut with.
    private typealias ListCase = (
        queries: [String], matching: (UserRecord) -> Bool, order: (UserRecord, UserRecord) -> Bool,
        cursor: (id: String, after: Bool)?, offset: Int, limit: Int
    )

    /// `assertListed` for each case, named by its place in `cases`.
    private func assertEachListed(_ cases: [ListCase], in all: [UserRecord], file: StaticString = #filePath, line: UInt = #line) async throws {
        for (index, c) in cases.enumerated() {
            try await assertListed(
                c.queries, in: all, matching: c.matching, order: c.order, cursor: c.cursor, offset: c.offset, limit: c.limit,
                "case \(index)", file: file, line: line)
        }
    }

    /// Every stored user: `matchesStored` on its stored fields gives the answer `matches` gives
    /// on the decoded user (a scan decodes only the users the first lets through).
    private func assertStoredFieldsMatchAsTheDecodedUser(
        _ queries: [String], search: String = "", file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let listed = try UserQuery(queries: queries, search: search)
        try store.read { r in
            var users = 0
            try r.forEachUserFields(reversed: false) { fields in
                let id = String(decoding: fields.id, as: UTF8.self)
                let user = try XCTUnwrap(try r.user(id: id))
                XCTAssertEqual(listed.matchesStored(fields), listed.matches(user), "\(id) for \(queries) \(search.debugDescription)", file: file, line: line)
                users += 1
                return true
            }
            XCTAssertGreaterThan(users, 0, file: file, line: line)
        }
    }

    func testTheWordAtATimeCheckForPlainASCIIFindsEveryHighByteAndCarriageReturn() {
        for length in 0...20 {
            let plain = [UInt8](repeating: 0x61, count: length)
            plain.withUnsafeBytes { XCTAssertTrue(ASCIIBytes.isASCIIWithoutCarriageReturn($0), "\(length) plain") }
            for at in 0..<length {
                for byte: UInt8 in [0x0D, 0x80, 0xC3, 0xFF, 0x0C, 0x0E, 0x8D] {
                    var bytes = plain
                    bytes[at] = byte
                    let expected = byte < 0x80 && byte != 0x0D
                    bytes.withUnsafeBytes {
                        XCTAssertEqual(ASCIIBytes.isASCIIWithoutCarriageReturn($0), expected, "\(byte) at \(at) of \(length)")
                    }
                }
            }
        }
    }

    /// Text filters of every method, with values and fields in and out of ASCII, empty ones and
    /// carriage returns: the stored fields give the decoded user's answer.
    func testTextFiltersFromTheStoredFieldsAnswerAsOnTheDecodedUser() async throws {
        var all = try await insertUsers(60)
        let names = ["Ann", "ann", "Ann\u{301}", "Anń", "Zoë", "Zoe", "", "a\r\nb", "a\r", "Émile", "ÉMILE", "Bob Lee"]
        for index in all.indices {
            all[index].name = names[index % names.count]
            if index % 7 == 3 { all[index].email = "" }
            if index % 5 == 2 { all[index].labels = ["vìp", "Staff"] }
        }
        try await store.write { [all] w in for user in all { try w.updateUser(user) } }
        let values: [Any] = ["Ann", "An", "nn", "Ann\u{301}", "ń", "Zoë", "", "a\r", "\r\n", "\nb", "b", "É", 7]
        for method in ["equal", "notEqual", "startsWith", "endsWith", "contains", "search", "lessThan", "greaterThanEqual"] {
            for attribute in ["name", "email", "phone", "$id", "labels"] where !(attribute == "labels" && method == "equal") {
                for value in values { try assertStoredFieldsMatchAsTheDecodedUser([query(method, attribute, [value])]) }
                try assertStoredFieldsMatchAsTheDecodedUser([query(method, attribute, ["Ann", "vìp", "u1@example.com"])])
            }
        }
        for attribute in ["name", "email", "phone", "labels"] {
            try assertStoredFieldsMatchAsTheDecodedUser([query("isNull", attribute)])
            try assertStoredFieldsMatchAsTheDecodedUser([query("isNotNull", attribute)])
        }
        for search in ["ann", "ANŃ", "lee bob", "a\r", "label:vìp", "LABEL:STAFF", "émile", "example"] {
            try assertStoredFieldsMatchAsTheDecodedUser([], search: search)
        }
    }

    func testPagesAreThoseOfSortingEveryMatch() async throws {
        let all = try await insertUsers(600)
        let byNameThenNewest: (UserRecord, UserRecord) -> Bool = { a, b in
            if a.name != b.name { return a.name < b.name }
            if a.createdAt != b.createdAt { return a.createdAt > b.createdAt }
            return a.id < b.id
        }
        let byID: (UserRecord, UserRecord) -> Bool = { $0.id < $1.id }
        let byIDDescending: (UserRecord, UserRecord) -> Bool = { $0.id > $1.id }
        let isVIP: (UserRecord) -> Bool = { $0.labels.contains("vip") }
        let cases: [ListCase] = [
            ([], { _ in true }, byID, nil, 0, 25),
            ([query("limit", nil, [7]), query("offset", nil, [590])], { _ in true }, byID, nil, 590, 7),
            ([query("orderAsc", "name"), query("orderDesc", "$createdAt"), query("limit", nil, [40]), query("offset", nil, [55])],
             { _ in true }, byNameThenNewest, nil, 55, 40),
            ([query("contains", "labels", ["vip"]), query("orderDesc", "$id"), query("limit", nil, [9]), query("offset", nil, [3])],
             isVIP, byIDDescending, nil, 3, 9),
            ([query("contains", "labels", ["vip"]), query("cursorAfter", nil, ["u00100"]), query("limit", nil, [5])],
             isVIP, byID, ("u00100", true), 0, 5),
            // The cursor need not match: its place in the order is what counts.
            ([query("contains", "labels", ["vip"]), query("cursorAfter", nil, ["u00101"]), query("limit", nil, [5])],
             isVIP, byID, ("u00101", true), 0, 5),
            ([query("orderAsc", "name"), query("orderDesc", "$createdAt"), query("cursorBefore", nil, ["u00333"]),
              query("limit", nil, [6]), query("offset", nil, [2])],
             { _ in true }, byNameThenNewest, ("u00333", false), 2, 6),
            ([query("orderAsc", "name"), query("orderDesc", "$createdAt"), query("cursorAfter", nil, ["u00333"]),
              query("limit", nil, [200]), query("offset", nil, [150])],
             { _ in true }, byNameThenNewest, ("u00333", true), 150, 200),
            ([query("cursorBefore", nil, ["u00010"]), query("limit", nil, [3])], { _ in true }, byID, ("u00010", false), 0, 3),
            ([query("cursorBefore", nil, ["u00002"]), query("limit", nil, [3])], { _ in true }, byID, ("u00002", false), 0, 3),
            ([query("equal", "name", ["Nobody"])], { _ in false }, byID, nil, 0, 25),
            // Ties on the name, broken by the id, at the edge of the window kept while paging back.
            ([query("orderAsc", "name"), query("cursorBefore", nil, ["u00300"]), query("limit", nil, [15])],
             { _ in true }, { a, b in a.name != b.name ? a.name < b.name : a.id < b.id }, ("u00300", false), 0, 15),
        ]
        try await assertEachListed(cases, in: all)
    }

    /// An `equal` filter on id, email or phone reads the users it names through their keys and
    /// indexes, not a scan, and its pages are still those of sorting every match.
    func testUsersNamedByIDEmailOrPhoneAreReadThroughTheIndexes() async throws {
        let all = try await insertUsers(600)
        let emails = ["u10@example.com", "u20@example.com", "u33@example.com", "U40@example.com", "nobody@example.com", "u20@example.com"]
        let byID: (UserRecord, UserRecord) -> Bool = { $0.id < $1.id }
        let byNameDescending: (UserRecord, UserRecord) -> Bool = { a, b in a.name != b.name ? a.name > b.name : a.id < b.id }
        let cases: [(queries: [String], matching: (UserRecord) -> Bool, order: (UserRecord, UserRecord) -> Bool, cursor: (id: String, after: Bool)?, offset: Int, limit: Int, source: UserQuery.Source)] = [
            ([query("equal", "email", emails)], { emails.contains($0.email) }, byID, nil, 0, 25,
             .named(attribute: "email", values: emails)),
            ([query("equal", "email", emails + [7]), query("contains", "labels", ["vip"])],
             { emails.contains($0.email) && $0.labels.contains("vip") }, byID, nil, 0, 25,
             .named(attribute: "email", values: emails)),
            ([query("equal", "phone", ["+14155550008", "+14155550012", "+14155550013"]), query("orderDesc", "name")],
             { ["+14155550008", "+14155550012"].contains($0.phone) }, byNameDescending, nil, 0, 25,
             .named(attribute: "phone", values: ["+14155550008", "+14155550012", "+14155550013"])),
            ([query("equal", "$id", ["u00001", "u00002", "u00003", "u00004", "zzz"]), query("cursorAfter", nil, ["u00002"]),
              query("limit", nil, [1]), query("offset", nil, [1])],
             { ["u00001", "u00002", "u00003", "u00004"].contains($0.id) }, byID, ("u00002", true), 1, 1,
             .named(attribute: "$id", values: ["u00001", "u00002", "u00003", "u00004", "zzz"])),
            ([query("equal", "$id", ["u00001", "u00005", "u00009"]), query("cursorBefore", nil, ["u00009"])],
             { ["u00001", "u00005", "u00009"].contains($0.id) }, byID, ("u00009", false), 0, 25,
             .named(attribute: "$id", values: ["u00001", "u00005", "u00009"])),
            ([query("equal", "email", ["u7@example.com"]), query("equal", "name", ["Ann"])], { _ in false }, byID, nil, 0, 25,
             .named(attribute: "email", values: ["u7@example.com"])),
            ([query("notEqual", "email", ["u1@example.com"]), query("limit", nil, [3])], { $0.email != "u1@example.com" }, byID, nil, 0, 3,
             .scan),
        ]
        for (index, c) in cases.enumerated() {
            XCTAssertEqual(try UserQuery(queries: c.queries, search: "").source, c.source, "case \(index)")
            try await assertListed(
                c.queries, in: all, matching: c.matching, order: c.order, cursor: c.cursor, offset: c.offset, limit: c.limit,
                "case \(index)")
        }
    }

    /// A search matches as Appwrite's does: every word, in any case, within the user's id, email,
    /// name, phone and `label:` labels joined by spaces, whatever letters they are written in.
    func testASearchMatchesEveryWordInAnyCaseAsInTheJoinedFields() async throws {
        var all = try await insertUsers(40)
        let names = ["Ann LEE", "Zoë Ångström", "ÉMILE", "e\u{301}mile", "Straße", "K\u{212A}elvin", "İnci", "ΣΊΣΥΦΟΣ"]
        for (index, name) in names.enumerated() { all[index].name = name }
        all[5].labels = ["Staff", "vip"]
        try await store.write { [all] w in for user in all.prefix(names.count) { try w.updateUser(user) } }
        func reference(_ search: String) -> (UserRecord) -> Bool {
            { user in
                let haystack = ([user.id, user.email, user.name, user.phone] + user.labels.map { "label:\($0)" })
                    .joined(separator: " ").lowercased()
                return search.lowercased().split(separator: " ").allSatisfy { haystack.contains($0) }
            }
        }
        let searches = [
            "ann", "ANN lee", "lee ann", "n l", "zoë", "ZOË ÅNG", "ångström", "émile", "ÉMI", "e\u{301}", "mile", "straße", "STRASSE",
            "kelvin", "\u{212A}", "inci", "i̇nci", "σίσυφος", "ΣΊΣ", "label:vip", "bel:st", "label:staff", "u00007", "U00007 EXAMPLE",
            "u1@example", "+1415555", "nobody", "  ", "ann zoë",
        ]
        for search in searches {
            try await assertListed(
                [query("limit", nil, [100])], search: search, in: all, matching: reference(search), order: { $0.id < $1.id },
                limit: 100, "search \(search.debugDescription)")
        }
        // The same answers from the stored fields, before any user is decoded.
        for search in searches { try assertStoredFieldsMatchAsTheDecodedUser([], search: search) }
        let unicode = try await users.list(queries: [], search: "ZOË ÅNG", call: server)
        XCTAssertEqual(unicode.users.map(\.id), ["u00001"], "a search in other letters than ASCII, in another case")
        let ascii = try await users.list(queries: [], search: "LEE ann", call: server)
        XCTAssertEqual(ascii.users.map(\.id), ["u00000"], "words in another order and case")
    }

    /// Filters on text fields are decided from the stored bytes where those are ASCII, and the
    /// pages are those the decoded users give.
    func testFiltersOnTextFieldsMatchAsOnTheDecodedUsers() async throws {
        var all = try await insertUsers(300)
        for (index, name) in ["Zoë", "Zoe", "Ann\u{301}", "ANN", "Anna"].enumerated() { all[index].name = name }
        try await store.write { [all] w in for user in all.prefix(5) { try w.updateUser(user) } }
        let byID: (UserRecord, UserRecord) -> Bool = { $0.id < $1.id }
        let cases: [(queries: [String], matching: (UserRecord) -> Bool)] = [
            ([query("startsWith", "name", ["An"])], { $0.name.hasPrefix("An") }),
            ([query("startsWith", "name", ["Zo"])], { $0.name.hasPrefix("Zo") }),
            ([query("equal", "name", ["Ann", "Zoe"])], { ["Ann", "Zoe"].contains($0.name) }),
            ([query("endsWith", "email", ["0@example.com"])], { $0.email.hasSuffix("0@example.com") }),
            ([query("contains", "name", ["nn"]), query("startsWith", "$id", ["u001"])], { $0.name.contains("nn") && $0.id.hasPrefix("u001") }),
            ([query("contains", "phone", ["5550"])], { !$0.phone.isEmpty && $0.phone.contains("5550") }),
            ([query("startsWith", "phone", [""])], { !$0.phone.isEmpty }),
            ([query("startsWith", "name", ["Zoë"])], { $0.name.hasPrefix("Zoë") }),
        ]
        for (index, c) in cases.enumerated() {
            try await assertListed(c.queries + [query("limit", nil, [300])], in: all, matching: c.matching, order: byID, limit: 300, "case \(index)")
        }
        for c in cases { try assertStoredFieldsMatchAsTheDecodedUser(c.queries) }
    }

    /// Filters on numbers, flags and labels are decided from the stored fields before a user is
    /// decoded, and the pages are those the decoded users give.
    func testFiltersOnNumbersFlagsAndLabelsMatchAsOnTheDecodedUsers() async throws {
        var all = try await insertUsers(300)
        for index in all.indices {
            all[index].status = index % 7 != 0
            all[index].emailVerification = index % 2 == 0
            all[index].phoneVerification = index % 5 == 0
            all[index].impersonator = index % 11 == 0
            all[index].passwordUpdate = index % 3 == 0 ? 0 : 5_000 + Int64(index)
            all[index].registration = 2_000 + Int64((index * 37) % 300)
            all[index].accessedAt = 3_000 + Int64((index * 53) % 300)
            all[index].updatedAt = 4_000 + Int64((index * 71) % 300)
            if index % 10 == 1 { all[index].labels = ["Staff", "vip"] }
            if index == 2 { all[index].labels = ["café"] }
        }
        try await store.write { [all] w in for user in all { try w.updateUser(user) } }
        let byID: (UserRecord, UserRecord) -> Bool = { $0.id < $1.id }
        let cases: [(queries: [String], matching: (UserRecord) -> Bool)] = [
            ([query("equal", "status", [false])], { !$0.status }),
            ([query("notEqual", "status", [true])], { !$0.status }),
            ([query("equal", "emailVerification", [true]), query("equal", "phoneVerification", [true])], { $0.emailVerification && $0.phoneVerification }),
            ([query("equal", "phoneVerification", [true])], { $0.phoneVerification }),
            ([query("equal", "impersonator", [true])], { $0.impersonator }),
            ([query("isNull", "passwordUpdate")], { $0.passwordUpdate == 0 }),
            ([query("isNotNull", "passwordUpdate"), query("lessThan", "passwordUpdate", [5_100])], { $0.passwordUpdate != 0 && $0.passwordUpdate < 5_100 }),
            ([query("between", "registration", [2_050, 2_060])], { (2_050...2_060).contains($0.registration) }),
            ([query("greaterThanEqual", "accessedAt", [3_290])], { $0.accessedAt >= 3_290 }),
            ([query("lessThanEqual", "$updatedAt", [4_010])], { $0.updatedAt <= 4_010 }),
            ([query("greaterThan", "$createdAt", [1_250])], { $0.createdAt > 1_250 }),
            ([query("equal", "status", ["false"])], { _ in false }),
            ([query("contains", "labels", ["vip"])], { $0.labels.contains("vip") }),
            ([query("contains", "labels", ["Staff", "café"])], { $0.labels.contains("Staff") || $0.labels.contains("café") }),
            ([query("contains", "labels", ["staff"])], { $0.labels.contains("staff") }),
            ([query("startsWith", "labels", ["St"])], { $0.labels.contains { $0.hasPrefix("St") } }),
            ([query("endsWith", "labels", ["fé"])], { $0.labels.contains { $0.hasSuffix("fé") } }),
            ([query("equal", "status", [false]), query("contains", "labels", ["vip"]), query("startsWith", "name", ["A"])],
             { !$0.status && $0.labels.contains("vip") && $0.name.hasPrefix("A") }),
        ]
        for (index, c) in cases.enumerated() {
            let expected = all.filter(c.matching).count
            XCTAssertLessThan(expected, all.count, "case \(index) turns some users away")
            try await assertListed(c.queries + [query("limit", nil, [300])], in: all, matching: c.matching, order: byID, limit: 300, "case \(index)")
        }
        for c in cases { try assertStoredFieldsMatchAsTheDecodedUser(c.queries) }
    }

    /// Lists in an order of numbers, flags or ids pass over users whose stored fields show they
    /// cannot be on the page; the pages and totals are still those of sorting every match.
    func testPagesInOrdersOfStoredNumbersAreThoseOfSortingEveryMatch() async throws {
        var all = try await insertUsers(600)
        for index in all.indices {
            all[index].registration = Int64(index % 3)  // many ties, broken by the next key or the id
            all[index].passwordUpdate = index % 4 == 0 ? 0 : 9_000 - Int64(index)  // some never set
            all[index].status = index % 6 != 0
        }
        try await store.write { [all] w in for user in all { try w.updateUser(user) } }
        func by(_ keys: [(UserRecord) -> Int64?], descending: [Bool]) -> (UserRecord, UserRecord) -> Bool {
            { a, b in
                for (key, down) in zip(keys, descending) {
                    let (x, y) = (key(a), key(b))
                    if x == y { continue }
                    guard let x else { return !down }  // no value: first going up, last going down
                    guard let y else { return down }
                    return down ? x > y : x < y
                }
                return a.id < b.id
            }
        }
        let newest = by([{ $0.createdAt }], descending: [true])
        let byRegistrationThenNewest = by([{ $0.registration }, { $0.createdAt }], descending: [false, true])
        let byPasswordUpdateDown = by([{ $0.passwordUpdate == 0 ? nil : $0.passwordUpdate }], descending: [true])
        let byPasswordUpdateUp = by([{ $0.passwordUpdate == 0 ? nil : $0.passwordUpdate }], descending: [false])
        let byRegistrationThenIDDown: (UserRecord, UserRecord) -> Bool = { a, b in
            a.registration != b.registration ? a.registration < b.registration : a.id > b.id
        }
        let isVIP: (UserRecord) -> Bool = { $0.labels.contains("vip") }
        let cases: [ListCase] = [
            ([query("orderDesc", "$createdAt")], { _ in true }, newest, nil, 0, 25),
            ([query("orderAsc", "registration"), query("orderDesc", "$createdAt"), query("limit", nil, [20]), query("offset", nil, [30])],
             { _ in true }, byRegistrationThenNewest, nil, 30, 20),
            ([query("orderDesc", "passwordUpdate"), query("limit", nil, [10])], { _ in true }, byPasswordUpdateDown, nil, 0, 10),
            ([query("orderAsc", "passwordUpdate"), query("limit", nil, [10])], { _ in true }, byPasswordUpdateUp, nil, 0, 10),
            ([query("orderDesc", "passwordUpdate"), query("cursorAfter", nil, ["u00301"]), query("limit", nil, [7])],
             { _ in true }, byPasswordUpdateDown, ("u00301", true), 0, 7),
            ([query("orderAsc", "registration"), query("orderDesc", "$createdAt"), query("cursorBefore", nil, ["u00333"]),
              query("limit", nil, [6]), query("offset", nil, [2])],
             { _ in true }, byRegistrationThenNewest, ("u00333", false), 2, 6),
            ([query("orderAsc", "registration"), query("orderDesc", "$id"), query("limit", nil, [15])],
             { _ in true }, byRegistrationThenIDDown, nil, 0, 15),
            ([query("orderAsc", "registration"), query("orderDesc", "$id"), query("cursorBefore", nil, ["u00100"]), query("limit", nil, [15])],
             { _ in true }, byRegistrationThenIDDown, ("u00100", false), 0, 15),
            ([query("orderAsc", "registration"), query("orderAsc", "$id"), query("cursorBefore", nil, ["u00500"]), query("limit", nil, [15])],
             { _ in true }, { a, b in a.registration != b.registration ? a.registration < b.registration : a.id < b.id }, ("u00500", false), 0, 15),
            ([query("equal", "status", [false]), query("orderDesc", "$createdAt"), query("limit", nil, [8])], { !$0.status }, newest, nil, 0, 8),
            ([query("contains", "labels", ["vip"]), query("orderDesc", "$createdAt"), query("limit", nil, [8])], isVIP, newest, nil, 0, 8),
        ]
        try await assertEachListed(cases, in: all)
        // A search, which the stored fields may not decide: the users past the page are decoded
        // to be counted.
        try await assertListed(
            [query("orderDesc", "$createdAt"), query("limit", nil, [12])], search: "ann", in: all, matching: { $0.name == "Ann" },
            order: newest, limit: 12, "a search")
    }

    /// Lists in an order of text (names, emails, phones, labels) are cut from the users' stored
    /// fields too: ASCII compared by bytes, other letters as `String` compares them (composed and
    /// decomposed accents alike), a missing email or phone first going up and last going down.
    func testPagesInOrdersOfTextAreThoseOfSortingEveryMatch() async throws {
        var all = try await insertUsers(400)
        let names = ["Zoë", "Zoe", "Ann\u{301}", "Anń", "ANN", "Ann", "Émile", "emile", "", "Ångström", "Bob"]
        for index in all.indices {
            all[index].name = names[(index * 7) % names.count]
            if index % 5 == 1 { all[index].email = "" }
            all[index].status = index % 6 != 0
            all[index].labels = index % 4 == 0 ? [] : [["vip", "Staff", "zeta", "émigré"][index % 4], "x"]
        }
        try await store.write { [all] w in for user in all { try w.updateUser(user) } }
        func by(_ key: @escaping (UserRecord) -> String?, descending: Bool) -> (UserRecord, UserRecord) -> Bool {
            { a, b in
                let (x, y) = (key(a), key(b))
                if x == y { return a.id < b.id }
                guard let x else { return !descending }  // no value: first going up, last going down
                guard let y else { return descending }
                return descending ? x > y : x < y
            }
        }
        let byName = by({ $0.name }, descending: false)
        let byNameDown = by({ $0.name }, descending: true)
        let byEmail = by({ $0.email.isEmpty ? nil : $0.email }, descending: false)
        let byPhoneDown = by({ $0.phone.isEmpty ? nil : $0.phone }, descending: true)
        let byLabel = by({ $0.labels.first }, descending: false)
        let byLabelDown = by({ $0.labels.first }, descending: true)
        let cases: [ListCase] = [
            ([query("orderAsc", "name"), query("limit", nil, [30])], { _ in true }, byName, nil, 0, 30),
            ([query("orderDesc", "name"), query("limit", nil, [30]), query("offset", nil, [20])], { _ in true }, byNameDown, nil, 20, 30),
            ([query("orderAsc", "name"), query("cursorAfter", nil, ["u00105"]), query("limit", nil, [25])], { _ in true }, byName, ("u00105", true), 0, 25),
            ([query("orderDesc", "name"), query("cursorBefore", nil, ["u00222"]), query("limit", nil, [25])], { _ in true }, byNameDown, ("u00222", false), 0, 25),
            ([query("orderAsc", "email"), query("limit", nil, [100])], { _ in true }, byEmail, nil, 0, 100),
            ([query("orderDesc", "phone"), query("limit", nil, [120])], { _ in true }, byPhoneDown, nil, 0, 120),
            ([query("orderAsc", "labels"), query("limit", nil, [120])], { _ in true }, byLabel, nil, 0, 120),
            ([query("orderDesc", "labels"), query("cursorAfter", nil, ["u00009"]), query("limit", nil, [40])], { _ in true }, byLabelDown, ("u00009", true), 0, 40),
            ([query("equal", "status", [false]), query("orderAsc", "name"), query("limit", nil, [10])], { !$0.status }, byName, nil, 0, 10),
        ]
        try await assertEachListed(cases, in: all)
    }

    func testPagesInIDOrderAreRightPastTheMatchesCounted() async throws {
        let all = try await insertUsers(6000)
        let (first, total) = try await users.list(queries: [], search: "", call: server)
        XCTAssertEqual(first.map(\.id), all.prefix(25).map(\.id))
        XCTAssertEqual(total, 5000, "matches counted up to 5000")
        let (later, _) = try await users.list(
            queries: [query("cursorAfter", nil, ["u05990"]), query("limit", nil, [20])], search: "", call: server)
        XCTAssertEqual(later.map(\.id), all.suffix(9).map(\.id), "a page past the first 5000 matches is still found")
        // In another order, the matches past the page are counted from the stored fields, or
        // decoded to be counted until 5000 are.
        let newestFirst = all.sorted { $0.createdAt != $1.createdAt ? $0.createdAt > $1.createdAt : $0.id < $1.id }
        for search in ["", "example"] {
            let (newest, newestTotal) = try await users.list(
                queries: [query("orderDesc", "$createdAt"), query("limit", nil, [10])], search: search, call: server)
            XCTAssertEqual(newest.map(\.id), newestFirst.prefix(10).map(\.id), "search \(search.debugDescription)")
            XCTAssertEqual(newestTotal, 5000, "search \(search.debugDescription)")
        }
        let (few, fewTotal) = try await users.list(queries: [query("equal", "name", ["Eve"])], search: "", call: server)
        XCTAssertEqual(fewTotal, 1200)
        XCTAssertEqual(few.first?.id, "u00004")
    }

    func testTheScanRunsOnTheQueryPool() async throws {
        _ = try await insertUsers(2000)
        let queryPool = BlockingPool(threads: 1, name: "authd-query")
        defer { queryPool.shutdown() }
        let pooled = Users(
            directory: try Directory(store: store, hasher: PasswordHasher(parameters: .testing), hashingPool: pool, queryPool: queryPool))
        XCTAssertEqual(queryPool.workMicros, 0)
        let (page, total) = try await pooled.list(queries: [query("search", "name", ["Nobody"])], search: "", call: server)
        XCTAssertEqual(page.count, 0)
        XCTAssertEqual(total, 0)
        XCTAssertGreaterThan(queryPool.workMicros, 0, "the 2000 users were scanned on the pool's thread")
    }
}
