package com.example.customers.subscriber;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import org.apache.avro.Schema;

/**
 * Writer schemas by id from a Confluent-compatible schema registry (Confluent Schema Registry, or
 * Apicurio Registry's ccompat API at {@code .../apis/ccompat/v7}): {@code GET
 * {url}/schemas/ids/{id}} answers {@code {"schema": "<the schema as a JSON string>", ...}}.
 *
 * <p>The schema under an id never changes, so a schema found is kept for the whole run. A failed
 * lookup (unknown id, registry down) is remembered for {@link #RETRY_AFTER}, so that a run of
 * records with that id costs one request, not one each; after that the id is asked for again.
 * Not thread-safe: the subscriber decodes on one thread.
 */
final class SchemaRegistry {
  static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(5);
  static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(10);
  static final Duration RETRY_AFTER = Duration.ofSeconds(10);

  /** Why there is no schema for an id; the message is meant for the undecodable-record line. */
  static final class LookupException extends Exception {
    private static final long serialVersionUID = 1L;

    LookupException(String message) {
      super(message);
    }
  }

  private record Failure(String reason, long atNanos) {}

  private static final ObjectMapper JSON = new ObjectMapper();

  private final String baseUrl;
  private final String authorization; // null: no credentials
  private final HttpClient http;
  private final Map<Integer, Schema> schemas = new HashMap<>();
  private final Map<Integer, Failure> failures = new HashMap<>();

  /**
   * @param url the registry's base URL, such as {@code http://127.0.0.1:18081/apis/ccompat/v7}
   * @param user basic-auth user, or null for none
   * @param password basic-auth password (used only with a user)
   */
  SchemaRegistry(String url, String user, String password) {
    this.baseUrl = url.endsWith("/") ? url.substring(0, url.length() - 1) : url;
    this.authorization =
        user == null
            ? null
            : "Basic "
                + Base64.getEncoder()
                    .encodeToString(
                        (user + ":" + (password == null ? "" : password))
                            .getBytes(StandardCharsets.UTF_8));
    // No redirects: the credentials are for this registry only.
    this.http =
        HttpClient.newBuilder()
            .connectTimeout(CONNECT_TIMEOUT)
            .followRedirects(HttpClient.Redirect.NEVER)
            .build();
  }

  String url() {
    return baseUrl;
  }

  /** The writer schema registered under {@code id}, from the cache or the registry. */
  Schema schema(int id) throws LookupException {
    Schema schema = schemas.get(id);
    if (schema != null) {
      return schema;
    }
    Failure failure = failures.get(id);
    if (failure != null && System.nanoTime() - failure.atNanos() < RETRY_AFTER.toNanos()) {
      throw new LookupException(failure.reason());
    }
    try {
      schema = fetch(id);
    } catch (LookupException e) {
      failures.put(id, new Failure(e.getMessage(), System.nanoTime()));
      throw e;
    }
    failures.remove(id);
    schemas.put(id, schema);
    return schema;
  }

  private Schema fetch(int id) throws LookupException {
    URI uri = URI.create(baseUrl + "/schemas/ids/" + id);
    HttpRequest.Builder request =
        HttpRequest.newBuilder(uri)
            .timeout(REQUEST_TIMEOUT)
            .header("Accept", "application/vnd.schemaregistry.v1+json, application/json")
            .GET();
    if (authorization != null) {
      request.header("Authorization", authorization);
    }
    HttpResponse<String> response;
    try {
      response = http.send(request.build(), HttpResponse.BodyHandlers.ofString());
    } catch (IOException e) {
      throw new LookupException(
          "schema id " + id + ": registry " + baseUrl + " unreachable: " + describe(e));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new LookupException("schema id " + id + ": registry lookup interrupted");
    }
    int status = response.statusCode();
    if (status == 404) {
      throw new LookupException(
          "schema id " + id + " unknown to the registry (HTTP 404" + detail(response.body()) + ")");
    }
    if (status != 200) {
      throw new LookupException(
          "schema id " + id + ": registry answered HTTP " + status + detail(response.body()));
    }
    return parse(id, response.body());
  }

  /** The Avro schema in a {@code /schemas/ids/{id}} answer. */
  static Schema parse(int id, String body) throws LookupException {
    JsonNode answer;
    try {
      answer = JSON.readTree(body);
    } catch (IOException e) {
      throw new LookupException("schema id " + id + ": registry answer is not JSON");
    }
    JsonNode type = answer.path("schemaType");
    if (type.isTextual() && !type.asText().equals("AVRO")) {
      throw new LookupException(
          "schema id " + id + " is a " + type.asText() + " schema, not Avro");
    }
    JsonNode text = answer.path("schema");
    if (!text.isTextual()) {
      throw new LookupException("schema id " + id + ": registry answer has no \"schema\" string");
    }
    try {
      return new Schema.Parser().parse(text.asText());
    } catch (RuntimeException e) {
      // SchemaParseException mostly; also what a schema with references (named types of other
      // subjects, which this lookup does not fetch) gives.
      throw new LookupException(
          "schema id " + id + ": not a usable Avro schema: " + e.getMessage());
    }
  }

  /** The registry's own message ({"error_code": 40403, "message": "..."}), if it gave one. */
  private static String detail(String body) {
    if (body == null || body.isBlank()) {
      return "";
    }
    try {
      JsonNode error = JSON.readTree(body);
      if (error.path("message").isTextual()) {
        String code =
            error.path("error_code").isNumber()
                ? "error_code " + error.get("error_code") + ": "
                : "";
        return ", " + code + error.get("message").asText();
      }
    } catch (IOException e) {
      // not JSON: quote the start of it
    }
    String start = body.strip();
    return ", " + (start.length() > 200 ? start.substring(0, 200) + "..." : start);
  }

  /** HttpClient's exceptions often say nothing themselves (ConnectException: null): add causes. */
  private static String describe(IOException e) {
    StringBuilder text = new StringBuilder(e.getClass().getSimpleName());
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t.getMessage() != null) {
        text.append(": ").append(t.getMessage());
        break;
      }
    }
    return text.toString();
  }
}
