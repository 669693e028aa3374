import AuthdStore
import Foundation

/// Appwrite list queries over users (spec 1.9, 4.3), in Appwrite's JSON form:
/// `{"method":"equal","attribute":"email","values":["a@example.com"]}`, `{"method":"limit","values":[10]}`,
/// `{"method":"cursorAfter","values":["<user id>"]}`, `{"method":"orderDesc","attribute":"$createdAt"}`.
public struct UserQuery: Sendable {
    enum Value: Sendable, Comparable {
        case string(String)
        case number(Double)
        case bool(Bool)

        static func < (a: Value, b: Value) -> Bool {
            switch (a, b) {
            case (.string(let x), .string(let y)): x < y
            case (.number(let x), .number(let y)): x < y
            case (.bool(let x), .bool(let y)): !x && y
            default: false
            }
        }
    }

    struct Filter: Sendable {
        let method: String
        let attribute: String
        let values: [Value]

        /// Whether a user whose `attribute` holds `field` (as `UserQuery.field` gives it) passes.
        func accepts(_ field: some Collection<Value>) -> Bool {
            let v = values
            switch method {
            case "equal": return field.contains { v.contains($0) }
            case "notEqual": return !field.contains { v.contains($0) }
            case "lessThan": return field.contains { f in v.contains { f < $0 } }
            case "lessThanEqual": return field.contains { f in v.contains { f <= $0 } }
            case "greaterThan": return field.contains { f in v.contains { f > $0 } }
            case "greaterThanEqual": return field.contains { f in v.contains { f >= $0 } }
            case "between": return field.contains { $0 >= v[0] && $0 <= v[1] }
            case "isNull": return field.isEmpty
            case "isNotNull": return !field.isEmpty
            case "contains":
                return field.contains { f in
                    v.contains { q in
                        if attribute == "labels" { return f == q }
                        if case .string(let s) = f, case .string(let t) = q { return s.contains(t) }
                        return false
                    }
                }
            case "search":
                return field.contains { f in
                    v.contains { q in
                        guard case .string(let s) = f, case .string(let t) = q else { return false }
                        return t.lowercased().split(separator: " ").allSatisfy { s.lowercased().contains($0) }
                    }
                }
            case "startsWith", "endsWith":
                return field.contains { f in
                    v.contains { q in
                        guard case .string(let s) = f, case .string(let t) = q else { return false }
                        return method == "startsWith" ? s.hasPrefix(t) : s.hasSuffix(t)
                    }
                }
            default: return false
            }
        }
    }

    var filters: [Filter] = []
    var order: [SortKey] = []
    var limit = 25
    var offset = 0
    var cursor: (id: String, after: Bool)?
    var search: String?
    /// The search's words, lowercased once for the whole scan.
    private var searchWords: [SearchWord] = []
    /// The filters on text fields, which a scan decides from the stored fields.
    private var textFilters: [TextFilter] = []
    /// The filters on numbers and flags, which a scan decides from the stored fields exactly.
    private var scalarFilters: [ScalarFilter] = []

    static let attributes: Set<String> = [
        "name", "email", "phone", "status", "passwordUpdate", "registration", "emailVerification",
        "phoneVerification", "labels", "impersonator", "accessedAt", "$id", "$createdAt", "$updatedAt",
    ]
    static let filterMethods: Set<String> = [
        "equal", "notEqual", "lessThan", "lessThanEqual", "greaterThan", "greaterThanEqual", "contains", "search",
        "isNull", "isNotNull", "startsWith", "endsWith", "between",
    ]

    /// Parses the query strings and the `search` parameter; `general_query_invalid` for anything
    /// malformed or not allowed here.
    public init(queries: [String], search: String) throws {
        guard queries.count <= 100 else { throw Self.invalid("at most 100 queries") }
        guard search.count <= 256 else { throw AuthdError.argumentInvalid("Invalid `search` param: at most 256 characters") }
        self.search = search.isEmpty ? nil : search
        searchWords = search.lowercased().split(separator: " ").map(SearchWord.init)
        for text in queries {
            guard text.utf8.count <= 4096,
                let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                let method = object["method"] as? String
            else { throw Self.invalid("Invalid query: \(text.prefix(100))") }
            let attribute = object["attribute"] as? String ?? ""
            let rawValues = object["values"] as? [Any] ?? []
            let values = try rawValues.map(Self.value)
            switch method {
            case "limit":
                guard case .number(let n)? = values.first, n >= 1, n <= 5000 else { throw Self.invalid("limit takes 1 to 5000") }
                limit = Int(n)
            case "offset":
                guard case .number(let n)? = values.first, n >= 0, n <= 5000 else { throw Self.invalid("offset takes 0 to 5000") }
                offset = Int(n)
            case "cursorAfter", "cursorBefore":
                guard case .string(let id)? = values.first else { throw Self.invalid("\(method) takes a user id") }
                cursor = (id, method == "cursorAfter")
            case "orderAsc", "orderDesc":
                let attribute = attribute.isEmpty ? "$id" : attribute
                guard Self.attributes.contains(attribute) else { throw Self.invalid("Attribute not found in schema: \(attribute)") }
                order.append(SortKey(attribute: attribute, ascending: method == "orderAsc"))
            case "select":
                throw Self.invalid("select queries are not supported on users")
            default:
                guard Self.filterMethods.contains(method) else { throw Self.invalid("Invalid query method: \(method)") }
                guard Self.attributes.contains(attribute) else { throw Self.invalid("Attribute not found in schema: \(attribute)") }
                if attribute == "labels" && method == "equal" {
                    throw Self.invalid("Cannot query equal on attribute \"labels\" because it is an array.")
                }
                let needs = ["isNull": 0, "isNotNull": 0, "between": 2]
                if let n = needs[method] {
                    guard values.count == n else { throw Self.invalid("\(method) takes \(n) values") }
                } else if values.isEmpty {
                    throw Self.invalid("\(method) needs at least one value")
                }
                filters.append(Filter(method: method, attribute: attribute, values: values))
                if let scalar = ScalarAttribute(rawValue: attribute) {
                    scalarFilters.append(ScalarFilter(filter: filters[filters.count - 1], attribute: scalar))
                }
                if let text = TextFilter(filters[filters.count - 1]) { textFilters.append(text) }
            }
        }
    }

    static func invalid(_ message: String) -> AuthdError {
        AuthdError(type: "general_query_invalid", code: 400, message: message)
    }

    static func value(_ any: Any) throws -> Value {
        switch any {
        case let b as Bool where type(of: any) == Bool.self: return .bool(b)
        case let n as NSNumber where String(cString: n.objCType) == "c": return .bool(n.boolValue)
        case let n as NSNumber: return .number(n.doubleValue)
        case let s as String: return .string(s)
        default: throw invalid("query values must be strings, numbers or booleans")
        }
    }

    static func field(_ user: UserRecord, _ attribute: String) -> [Value] {
        if attribute == "labels" { return user.labels.map { .string($0) } }
        let value = TextAttribute(rawValue: attribute).flatMap { $0.value(of: user) } ?? ScalarAttribute(rawValue: attribute)?.value(of: user)
        return value.map { [$0] } ?? []
    }

    func matches(_ user: UserRecord) -> Bool {
        if search != nil {
            // Each word is in the user's id, email, name, phone or one of their labels (as
            // `label:<label>`), in any case: in Appwrite's terms, in the haystack of those joined
            // by spaces. A word has no space, so it lies within one of them.
            let labels = user.labels.map { "label:\($0)" }
            for word in searchWords {
                guard word.isIn(user.id) || word.isIn(user.email) || word.isIn(user.name) || word.isIn(user.phone)
                    || labels.contains(where: word.isIn)
                else { return false }
            }
        }
        return filters.allSatisfy { $0.accepts(Self.field(user, $0.attribute)) }
    }

    /// Whether the user matches, from its stored fields alone: the answer `matches` gives on the
    /// decoded user. Every filter is on a text field (`textFilters`) or a number or flag
    /// (`scalarFilters`).
    func matchesStored(_ fields: borrowing UserFields) -> Bool {
        searchWords.allSatisfy { $0.isIn(fields) } && textFilters.allSatisfy { $0.matches(fields) }
            && scalarFilters.allSatisfy { $0.accepts(fields) }
    }

    /// A user's values in the order, then its id: what a list sorts its kept users by.
    func sortValues(_ user: UserRecord) -> [Value?] {
        order.map { $0.value(of: user) } + [.string(user.id)]
    }

    /// The same from a user's stored fields.
    func sortValues(_ fields: borrowing UserFields) -> [Value?] {
        let id = Value.string(String(decoding: fields.id, as: UTF8.self))
        return order.map { key in
            if let scalar = key.scalar { return scalar.value(of: fields) }
            if key.text == .id { return id }
            return key.text?.storedText(of: fields).map { .string(String(decoding: $0, as: UTF8.self)) }
        }
            + [id]
    }

    /// `precedes` for two users' `sortValues`.
    func precedes(_ x: [Value?], _ y: [Value?]) -> Bool {
        for (index, key) in order.enumerated() where x[index] != y[index] {
            return SortKey.precedes(x[index], y[index], ascending: key.ascending)
        }
        return x[order.count]! < y[order.count]!
    }

    /// Where a user comes against a user's `sortValues`: negative before, positive after (zero:
    /// the same user). No array is made of the user's.
    func compare(_ user: UserRecord, _ values: [Value?]) -> Int {
        for (index, key) in order.enumerated() {
            let x = key.value(of: user)
            if x == values[index] { continue }
            return SortKey.precedes(x, values[index], ascending: key.ascending) ? -1 : 1
        }
        guard case .string(let id)? = values[order.count] else { return 1 }
        return user.id == id ? 0 : user.id < id ? -1 : 1
    }

    /// Where a user's stored fields come against a user's `sortValues`: negative before,
    /// positive after (zero: the same user). No value is made of the fields but a text in other
    /// letters than ASCII, compared as `String` compares it.
    func compare(_ fields: borrowing UserFields, _ values: [Value?]) -> Int {
        for (index, key) in order.enumerated() {
            let y = values[index]
            if let scalar = key.scalar {
                let x = scalar.value(of: fields)
                if x == y { continue }
                return SortKey.precedes(x, y, ascending: key.ascending) ? -1 : 1
            }
            let text = key.text?.storedText(of: fields)
            guard let text, case .string(let other)? = y else {
                if text == nil && y == nil { continue }
                // No value comes first going up, last going down.
                return (text == nil) == key.ascending ? -1 : 1
            }
            let byText = Self.compare(text, other)
            if byText != 0 { return key.ascending ? byText : -byText }
        }
        guard case .string(let id)? = values[order.count] else { return 1 }
        return Self.compare(fields.id, id)
    }

    /// Stored text against a decoded string, as `String` orders them: negative, zero or
    /// positive. Two ASCII texts by their bytes (ids always are, by `Identifiers`), where byte
    /// order is `String`'s; any other pair as strings.
    private static func compare(_ stored: UnsafeRawBufferPointer, _ text: String) -> Int {
        var text = text
        let ascii = text.withUTF8 { bytes -> Int? in
            guard WireReader.isASCII(stored), WireReader.isASCII(UnsafeRawBufferPointer(bytes)) else { return nil }
            let common = min(stored.count, bytes.count)
            for at in 0..<common where stored[at] != bytes[at] { return stored[at] < bytes[at] ? -1 : 1 }
            return stored.count - bytes.count
        }
        if let ascii { return ascii }
        let decoded = String(decoding: stored, as: UTF8.self)
        return decoded == text ? 0 : decoded < text ? -1 : 1
    }
}

/// One attribute of a list's order, and which way.
struct SortKey: Sendable {
    let attribute: String
    let ascending: Bool
    /// The attribute when it is a number or flag.
    let scalar: ScalarAttribute?
    /// The attribute when it is text, resolved once: a scan reads it for every user.
    let text: TextAttribute?

    init(attribute: String, ascending: Bool) {
        self.attribute = attribute
        self.ascending = ascending
        scalar = ScalarAttribute(rawValue: attribute)
        text = TextAttribute(rawValue: attribute)
    }

    /// The user's value that orders it (its first label, for labels); none when it has none.
    /// No array is made, as `UserQuery.field` makes: a sort compares the same users many times.
    func value(of user: UserRecord) -> UserQuery.Value? {
        if let text { return text.value(of: user) }
        return scalar?.value(of: user)
    }

    /// Whether a user with `x` comes before one with `y` (unequal): a user without a value
    /// comes first going up, last going down.
    static func precedes(_ x: UserQuery.Value?, _ y: UserQuery.Value?, ascending: Bool) -> Bool {
        guard let x else { return ascending }
        guard let y else { return !ascending }
        return ascending ? x < y : y < x
    }
}

/// One lowercased word of a search. A scan checks it against every user's fields: an ASCII word
/// in an ASCII field (ids, emails and phones always are) is looked for byte by byte, lowercasing
/// the field's bytes as it goes, with no string made; any other pair as `String` compares them.
/// The same answer either way, at a fraction of the cost: over a million users the string way
/// took 2.0-3.2 s, most of it in making and searching each user's lowercased haystack.
struct SearchWord: Sendable {
    let text: String
    private let ascii: [UInt8]?

    init(_ word: Substring) {
        text = String(word)
        ascii = text.utf8.allSatisfy { $0 < 0x80 } ? Array(text.utf8) : nil
    }

    func isIn(_ field: String) -> Bool {
        if let ascii {
            var field = field
            if let found = field.withUTF8({ bytes in Self.asciiContains(UnsafeRawBufferPointer(bytes), ascii) }) { return found }
        }
        return field.lowercased().contains(text)
    }

    /// Whether the word is in one of the user's stored text fields (labels as `label:<label>`),
    /// as `isIn` finds it in the decoded ones: an ASCII field by its bytes, any other made a
    /// string first.
    func isIn(_ user: borrowing UserFields) -> Bool {
        func holds(_ field: UnsafeRawBufferPointer) -> Bool {
            if let ascii, let found = Self.asciiContains(field, ascii) { return found }
            return isIn(String(decoding: field, as: UTF8.self))
        }
        if holds(user.id) || holds(user.email) || holds(user.name) || holds(user.phone) { return true }
        for label in user.labels {
            let prefixed = Self.labelPrefix + Array(label)
            if prefixed.withUnsafeBytes(holds) { return true }
        }
        return false
    }

    private static let labelPrefix = Array("label:".utf8)

    /// Whether the (lowercased) word lies in `haystack` with its ASCII capitals taken as small;
    /// nil when the haystack is not ASCII.
    private static func asciiContains(_ haystack: UnsafeRawBufferPointer, _ needle: [UInt8]) -> Bool? {
        guard WireReader.isASCII(haystack) else { return nil }
        return ASCIIBytes.contains(needle, in: haystack, ignoringCase: true)
    }
}

/// Comparisons of ASCII text held as bytes, as a scan reads it off the store.
enum ASCIIBytes {
    /// Whether every byte is ASCII and none a carriage return, read eight bytes at a time (a
    /// scan asks it of a field of every user).
    static func isASCIIWithoutCarriageReturn(_ bytes: UnsafeRawBufferPointer) -> Bool {
        @inline(__always) func clean(_ word: UInt64) -> Bool {
            let crs = word ^ 0x0D0D_0D0D_0D0D_0D0D  // a zero byte where a carriage return was
            let zeroBytes = (crs &- 0x0101_0101_0101_0101) & ~crs & 0x8080_8080_8080_8080
            return (word & 0x8080_8080_8080_8080) | zeroBytes == 0
        }
        guard bytes.count >= 8 else { return bytes.allSatisfy { $0 < 0x80 && $0 != 0x0D } }
        var offset = 0
        while offset + 8 <= bytes.count {
            guard clean(bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) else { return false }
            offset += 8
        }
        // The last eight bytes, overlapping those already read.
        return offset == bytes.count || clean(bytes.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self))
    }

    /// Whether `needle` lies in `haystack`; with `ignoringCase`, the haystack's capitals are
    /// taken as small (the needle is lowercased already).
    static func contains(_ needle: [UInt8], in haystack: UnsafeRawBufferPointer, ignoringCase: Bool) -> Bool {
        guard needle.count <= haystack.count else { return false }
        guard !needle.isEmpty else { return true }
        @inline(__always) func lower(_ byte: UInt8) -> UInt8 { ignoringCase && byte &- 0x41 < 26 ? byte | 0x20 : byte }
        for start in 0...(haystack.count - needle.count) {
            var at = 0
            while at < needle.count, lower(haystack[start + at]) == needle[at] { at += 1 }
            if at == needle.count { return true }
        }
        return false
    }
}

/// A filter on a text field (`name`, `email`, `phone`, `$id`, `labels`), decided from the
/// user's stored fields with the same answer as on the decoded user. `equal`, `startsWith`,
/// `endsWith` and `contains` (on labels, a label equal to a value) with ASCII values compare
/// ASCII fields byte by byte, as `String` compares them; any other field or filter is made
/// strings and checked as on a decoded user (`UserQuery.Filter.accepts`).
final class TextFilter: Sendable {
    let filter: UserQuery.Filter
    private let attribute: TextAttribute
    /// How the bytes are compared; nil when the filter is not one compared so, or has an empty
    /// value (`String.contains` finds no empty string). A field that holds a carriage return is
    /// left to the strings too: there `String`'s characters and bytes part ways ("\r\n" is one
    /// character, so "a\r\nb" does not start with "a\r").
    private let comparison: Comparison?
    /// The values' bytes, when `comparison` is set.
    private let values: [[UInt8]]

    private enum Comparison { case equal, startsWith, endsWith, contains }

    /// Nil for a filter on another attribute.
    init?(_ filter: UserQuery.Filter) {
        guard let attribute = TextAttribute(rawValue: filter.attribute) else { return nil }
        self.filter = filter
        self.attribute = attribute
        var bytes: [[UInt8]] = []
        for value in filter.values {
            guard case .string(let text) = value, !text.isEmpty, text.utf8.allSatisfy({ $0 < 0x80 }) else { break }
            bytes.append(Array(text.utf8))
        }
        let methods: [String: Comparison] = [
            "equal": .equal, "startsWith": .startsWith, "endsWith": .endsWith,
            // On labels, `contains` is a label equal to a value.
            "contains": attribute == .labels ? .equal : .contains,
        ]
        comparison = bytes.count == filter.values.count ? methods[filter.method] : nil
        values = bytes
    }

    /// Whether the user passes: the stored texts, as `UserQuery.field` lists the decoded ones.
    func matches(_ fields: borrowing UserFields) -> Bool {
        if attribute == .labels { return passes(fields.labels) }
        guard let text = attribute.storedText(of: fields) else { return passes(EmptyCollection()) }
        return passes(CollectionOfOne(text))
    }

    private func passes(_ texts: some Collection<UnsafeRawBufferPointer>) -> Bool {
        if let comparison, texts.allSatisfy(ASCIIBytes.isASCIIWithoutCarriageReturn) {
            return texts.contains { field in
                values.contains { value in
                    guard value.count <= field.count else { return false }
                    switch comparison {
                    case .equal: return value.count == field.count && field.elementsEqual(value)
                    case .startsWith: return field.prefix(value.count).elementsEqual(value)
                    case .endsWith: return field.suffix(value.count).elementsEqual(value)
                    case .contains: return ASCIIBytes.contains(value, in: field, ignoringCase: false)
                    }
                }
            }
        }
        return filter.accepts(texts.map { .string(String(decoding: $0, as: UTF8.self)) })
    }
}

/// A text attribute of a user, by its name in queries, read from a decoded user or from its
/// stored fields alike: an empty email or phone is none, and of labels the first (all of them,
/// for a filter, are `UserQuery.field`'s and `TextFilter`'s to read).
enum TextAttribute: String, Sendable {
    case id = "$id"
    case name, email, phone, labels

    /// The user's value.
    func value(of user: UserRecord) -> UserQuery.Value? {
        switch self {
        case .id: .string(user.id)
        case .name: .string(user.name)
        case .email: user.email.isEmpty ? nil : .string(user.email)
        case .phone: user.phone.isEmpty ? nil : .string(user.phone)
        case .labels: user.labels.first.map { .string($0) }
        }
    }

    /// The same value's stored bytes.
    func storedText(of fields: borrowing UserFields) -> UnsafeRawBufferPointer? {
        switch self {
        case .id: fields.id
        case .name: fields.name
        case .email: fields.email.isEmpty ? nil : fields.email
        case .phone: fields.phone.isEmpty ? nil : fields.phone
        case .labels: fields.labels.first
        }
    }
}

extension Users {
    /// `Users/List`: the page of matching users and the number of matches (counted up to 5000).
    /// The queries are checked here; the scan runs on the directory's query pool when it has
    /// one: over a million users it takes about a tenth of a second, which on an event loop would
    /// hold up every call on it.
    public func list(queries: [String], search: String, call: Call) async throws -> (users: [UserRecord], total: Int) {
        let query = try UserQuery(queries: queries, search: search)
        return try await directory.query { try query.page(in: $0) }
    }
}

extension UserQuery {
    /// Appwrite counts matches up to this many (`total`).
    static let countLimit = 5000

    /// Where a query's matches come from: the users an `equal` filter on `$id`, `email` or
    /// `phone` names, read by key or through the email and phone indexes (every match has one
    /// of those values, so no other user need be read), or else a scan of every user.
    enum Source: Equatable {
        case named(attribute: String, values: [String])
        case scan
    }

    var source: Source {
        for filter in filters where filter.method == "equal" && ["$id", "email", "phone"].contains(filter.attribute) {
            // A value that is not a string matches no stored id, email or phone.
            let values = filter.values.compactMap { value -> String? in
                if case .string(let text) = value { return text }
                return nil
            }
            return .named(attribute: filter.attribute, values: values)
        }
        return .scan
    }

    /// The users `source` names, each once; nil when the users must be scanned.
    private func namedUsers(in reader: any StoreReader) throws -> [UserRecord]? {
        guard case .named(let attribute, let values) = source else { return nil }
        var seen = Set<String>()
        return try values.compactMap { value -> UserRecord? in
            let id: String? =
                switch attribute {
                case "email": try reader.userID(email: value)
                case "phone": try reader.userID(phone: value)
                default: value
                }
            guard let id, seen.insert(id).inserted else { return nil }
            return try reader.user(id: id)
        }
    }

    /// The page of matches and their number. Matches are read through an index when an `equal`
    /// filter names users by id, email or phone (`source`), else gathered by a scan of every
    /// user in id order, keeping only the `offset + limit` of them the page is cut from, at
    /// most twice that many at a time: a list over a million users holds a page's worth of
    /// records, not a million. In id order (no order asked for, or `$id` ascending) the scan
    /// stops once the page is whole and 5000 matches are counted; only the matches are decoded
    /// (`matchesStored`). In another order, no user is decoded until the page is known
    /// (`pageOfStoredFields`). A scan of a million users that decodes each takes about a
    /// second; one that looks at their stored fields, a tenth of that; a lookup by email, a
    /// millisecond.
    ///
    /// A cursor is the named user's place in the order, matching or not (as in Appwrite): the
    /// page is cut from the matches after it (`cursorAfter`) or before it (`cursorBefore`).
    func page(in reader: any StoreReader) throws -> (users: [UserRecord], total: Int) {
        // The cursor's place in the order.
        var cursorValues: [Value?]?
        if let cursor {
            guard let user = try reader.user(id: cursor.id) else {
                throw AuthdError(type: "general_cursor_not_found", code: 400, message: "Cursor not found.")
            }
            cursorValues = sortValues(user)
        }
        let backwards = cursor?.after == false
        let window = offset + limit
        // Users come in id order (their keys are their ids, ASCII by `Identifiers`), which is
        // this query's order when it asks for none other.
        let inScanOrder = !backwards && order.allSatisfy { $0.attribute == "$id" && $0.ascending }
        if !inScanOrder && source == .scan {
            return try pageOfStoredFields(in: reader, cursorValues: cursorValues, backwards: backwards, window: window)
        }
        // Here the users come in id order and the page is the first `window` matches, or the
        // users are those an `equal` filter names (as many as its values), all kept and sorted.
        var kept: [UserRecord] = []
        var total = 0
        let gather = { (user: UserRecord) -> Bool in
            guard matches(user) else { return true }
            total += 1
            if let cursorValues, backwards ? compare(user, cursorValues) >= 0 : compare(user, cursorValues) <= 0 { return true }
            guard inScanOrder else {
                kept.append(user)
                return true
            }
            if kept.count < window { kept.append(user) }
            return kept.count < window || total < Self.countLimit
        }
        if let named = try namedUsers(in: reader) {
            // In id order, as a scan would meet them.
            for user in named.sorted(by: { $0.id < $1.id }) where !gather(user) { break }
        } else if searchWords.isEmpty && textFilters.isEmpty && scalarFilters.isEmpty {
            try reader.forEachUser(after: nil, gather)
        } else {
            // A user whose stored fields lack a word or fail a filter is not decoded (most users,
            // for most searches and filters).
            try reader.forEachUser(after: nil, mayMatch: matchesStored, gather)
        }
        keepWindow(&kept, window: window, backwards: backwards, by: sortValues)
        return (Array(pageOf(kept, backwards: backwards)), min(total, Self.countLimit))
    }

    /// The page of a scan in another order than the ids': the scan decodes no user, and
    /// keeps only the `sortValues` of the window's candidates; the page's users are then read
    /// by id. Newest first over a million users took 7 s decoding and sorting every user.
    private func pageOfStoredFields(
        in reader: any StoreReader, cursorValues: [Value?]?, backwards: Bool, window: Int
    ) throws -> (users: [UserRecord], total: Int) {
        var kept: [[Value?]] = []
        var bound: [Value?]?
        var total = 0
        // Any order of visits gives the same page. Going down an order, the newest ids first:
        // ids made by `ID.unique()` grow with time, so in the orders that follow time (newest
        // first) the window fills with its users at once, and the rest are passed over.
        let reversed = order.first.map { !$0.ascending } ?? false
        try reader.forEachUserFields(reversed: reversed) { fields in
            guard matchesStored(fields) else { return true }
            total += 1
            if let cursorValues, backwards ? compare(fields, cursorValues) >= 0 : compare(fields, cursorValues) <= 0 { return true }
            if let bound, backwards ? compare(fields, bound) <= 0 : compare(fields, bound) >= 0 { return true }
            kept.append(sortValues(fields))
            if kept.count >= 2 * window {
                keepWindow(&kept, window: window, backwards: backwards) { $0 }
                bound = backwards ? kept.first : kept.last
            }
            return true
        }
        keepWindow(&kept, window: window, backwards: backwards) { $0 }
        let users = try pageOf(kept, backwards: backwards).map { values -> UserRecord in
            guard case .string(let id)? = values[order.count], let user = try reader.user(id: id) else {
                throw StoreError(.corrupt, "a user listed by its stored fields could not be read")
            }
            return user
        }
        return (users, min(total, Self.countLimit))
    }

    /// The page cut from a sorted window: `limit` after the first `offset`, or, paging
    /// backwards, before the last `offset`.
    private func pageOf<Item>(_ window: [Item], backwards: Bool) -> ArraySlice<Item> {
        backwards ? window.dropLast(offset).suffix(limit) : window.dropFirst(offset).prefix(limit)
    }

    /// Sorts `kept` and keeps the `window` the page is cut from: the first ones, or the last
    /// ones when paging backwards. Each item's `sortValues` are read once, and the items'
    /// places sorted by those: a sort of the users themselves copied a `UserRecord` for each
    /// comparison (a retain and a release for each of its strings and arrays).
    private func keepWindow<Item>(_ kept: inout [Item], window: Int, backwards: Bool, by values: (Item) -> [Value?]) {
        let sortValues = kept.map(values)
        let places = kept.indices.sorted { precedes(sortValues[$0], sortValues[$1]) }
        let chosen = places.count <= window ? places[...] : backwards ? places.suffix(window) : places.prefix(window)
        kept = chosen.map { kept[$0] }
    }
}

/// The numbers and flags a list filters on, under the same names in a decoded user and in its
/// stored fields, so that one table (`ScalarAttribute.value`) reads both.
protocol ListedScalars {
    var createdAt: Int64 { get }
    var updatedAt: Int64 { get }
    var status: Bool { get }
    var passwordUpdate: Int64 { get }
    var registration: Int64 { get }
    var emailVerification: Bool { get }
    var phoneVerification: Bool { get }
    var accessedAt: Int64 { get }
    var impersonator: Bool { get }
}

extension UserRecord: ListedScalars {}
extension UserFields: ListedScalars {}

/// An attribute that is a number or a flag.
enum ScalarAttribute: String, Sendable {
    case status, passwordUpdate, registration, emailVerification, phoneVerification, impersonator, accessedAt
    case createdAt = "$createdAt"
    case updatedAt = "$updatedAt"

    /// The user's value; none for a password never set (`isNull`). Inlined where it is used, so
    /// that a user lent to it is read in place, not copied to be passed (a sort compares the same
    /// users many times).
    @inline(__always)
    func value(of user: some ListedScalars) -> UserQuery.Value? {
        switch self {
        case .status: .bool(user.status)
        case .passwordUpdate: user.passwordUpdate == 0 ? nil : .number(Double(user.passwordUpdate))
        case .registration: .number(Double(user.registration))
        case .emailVerification: .bool(user.emailVerification)
        case .phoneVerification: .bool(user.phoneVerification)
        case .impersonator: .bool(user.impersonator)
        case .accessedAt: .number(Double(user.accessedAt))
        case .createdAt: .number(Double(user.createdAt))
        case .updatedAt: .number(Double(user.updatedAt))
        }
    }
}

/// A filter on a number or flag, decided exactly from a user's stored fields (no `[Value]` is
/// made per user, as `UserQuery.field` makes for a decoded one).
final class ScalarFilter: Sendable {
    let filter: UserQuery.Filter
    let attribute: ScalarAttribute

    init(filter: UserQuery.Filter, attribute: ScalarAttribute) {
        self.filter = filter
        self.attribute = attribute
    }

    func accepts(_ user: some ListedScalars) -> Bool {
        if let value = attribute.value(of: user) { return filter.accepts(CollectionOfOne(value)) }
        return filter.accepts(EmptyCollection())
    }
}
